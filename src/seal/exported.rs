//! Checkpoint notes in every form they leave the box in, read back for an auditor.
//!
//! Owns: [`notes_in`], which finds the signed notes in a text that holds any mix of
//! - notes one after another, as `checkpoints.note` holds them (each starts with the line
//!   `daftari-checkpoint/v1`);
//! - the JSON lines the server prints on stdout, `{"daftari_checkpoint": "<note>", …}`;
//! - a journald export of those lines: `journalctl -o json` (the line is the `MESSAGE` string,
//!   or its bytes as an array of numbers), `journalctl -o export` (`MESSAGE=<line>`) and
//!   `journalctl -o short`/`cat` (the line after a prefix).
//!
//! Lines that are none of these (other journal entries, blank lines) are passed over: this
//! module only finds notes, it never judges them; their signatures are checked by whoever
//! reads them ([`super::note::VKey::open`]).
//!
//! Must not: verify, trust or drop a note it found.

use super::note::HEADER;

/// The JSON field that carries a note in the server's stdout lines.
pub const JSON_FIELD: &str = "daftari_checkpoint";

/// The notes in `text`, in the order they appear.
pub fn notes_in(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in text.split_inclusive('\n') {
        if line.trim_end() == HEADER {
            flush(&mut cur, &mut out);
            cur.push_str(line);
        } else if let Some(note) = json_note(line, 0) {
            flush(&mut cur, &mut out);
            out.push(note);
        } else if !cur.is_empty() {
            cur.push_str(line);
        }
    }
    flush(&mut cur, &mut out);
    out
}

fn flush(cur: &mut String, out: &mut Vec<String>) {
    if !cur.trim().is_empty() {
        out.push(std::mem::take(cur));
    }
    cur.clear();
}

/// How deep a journal entry may nest the server's line (`MESSAGE` holding the line).
const MAX_NESTING: usize = 2;

/// The note in one JSON line (the server's own, or a journal entry whose message is one),
/// after any prefix before its first `{`.
fn json_note(line: &str, depth: usize) -> Option<String> {
    // Only lines that can hold a note are parsed: the server's own, and journal entries
    // (whose message may be an array of byte values, with no readable field name in it).
    if depth > MAX_NESTING || !(line.contains(JSON_FIELD) || line.contains("\"MESSAGE\"")) {
        return None;
    }
    let start = line.find('{')?;
    let v: serde_json::Value = serde_json::from_str(line[start..].trim_end()).ok()?;
    if let Some(note) = v.get(JSON_FIELD).and_then(|n| n.as_str()) {
        return Some(note.to_owned());
    }
    match v.get("MESSAGE")? {
        serde_json::Value::String(m) => json_note(m, depth + 1),
        serde_json::Value::Array(bytes) => {
            let bytes: Option<Vec<u8>> = bytes
                .iter()
                .map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
                .collect();
            json_note(std::str::from_utf8(&bytes?).ok()?, depth + 1)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOTE: &str = "daftari-checkpoint/v1\nsink\n12\nAAAA\nepoch 3\nseal BBBB\ntime 9\n\n\
                        \u{2014} sink CCCC\n";

    fn line(note: &str) -> String {
        serde_json::json!({ JSON_FIELD: note, "size": 12, "epoch": 3 }).to_string()
    }

    #[test]
    fn notes_one_after_another_split_apart() {
        let other = NOTE.replace("epoch 3", "epoch 4");
        assert_eq!(
            notes_in(&format!("{NOTE}{other}")),
            vec![NOTE.to_owned(), other]
        );
    }

    #[test]
    fn the_stdout_lines_and_their_journal_exports_give_the_note() {
        let l = line(NOTE);
        let json = serde_json::json!({ "MESSAGE": l, "_PID": "7" }).to_string();
        let bytes: Vec<u8> = l.bytes().collect();
        let as_bytes = serde_json::json!({ "MESSAGE": bytes }).to_string();
        let forms = [
            l.clone(),
            json,
            as_bytes,
            format!("MESSAGE={l}"),
            format!("Dec 03 12:00:00 sink daftari[7]: {l}"),
        ];
        for f in forms {
            let text = format!("unrelated line\n{f}\n__CURSOR=s=1\n\n");
            assert_eq!(notes_in(&text), vec![NOTE.to_owned()], "{f}");
        }
    }

    #[test]
    fn mixed_forms_keep_their_order_and_nothing_else_is_a_note() {
        let text = format!("{NOTE}{}\n{NOTE}", line("second"));
        assert_eq!(
            notes_in(&text),
            vec![NOTE.to_owned(), "second".to_owned(), NOTE.to_owned()]
        );
        assert!(notes_in("-- No entries --\n{\"MESSAGE\": \"hello\"}\n").is_empty());
        assert!(notes_in("").is_empty());
    }
}
