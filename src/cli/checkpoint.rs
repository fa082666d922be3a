//! `daftari checkpoint [--data-dir DIR]`: prints the newest exported checkpoint (a signed
//! note) from the local checkpoint file, to copy off the box or hand to an auditor.

use std::path::PathBuf;

use daftari::seal::checkpoints::CHECKPOINT_FILE;
use daftari::seal::exported::notes_in;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long, default_value = "./data")]
    data_dir: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<u8> {
    use anyhow::Context;
    let path = args.data_dir.join(CHECKPOINT_FILE);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "read {} (has the server sealed an epoch yet?)",
            path.display()
        )
    })?;
    let Some(last) = notes_in(&text).pop() else {
        anyhow::bail!("{} holds no checkpoint yet", path.display());
    };
    print!("{last}");
    Ok(0)
}
