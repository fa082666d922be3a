// v2 only: changes an attacker makes through the compression, so that every frame still
// decompresses and every checksum inside it holds.

/// The first break's `field` mentions `text`.
#[track_caller]
fn assert_names(v: &Verdict, field: &str, text: &str) {
    let first = v.first_break();
    let got = first[field].as_str().unwrap_or_default();
    assert!(got.contains(text), "{field} should name {text:?}: {first}");
}

/// Rewrites the middle block's `column` frame: decompressed, changed by `edit`, compressed
/// again (with a checksum, as the writer does).
fn recompressed(column: &str, edit: impl Fn(&mut Vec<u8>)) -> (Verdict, i64) {
    let mut first = 0;
    let v = tampered(|d| {
        let (path, f) = middle(d);
        first = f;
        let conn = open_rw(&path);
        let select = format!("SELECT {column} FROM blocks WHERE first_seq = ?1");
        let frame: Vec<u8> = conn.query_row(&select, [f], |r| r.get(0)).unwrap();
        let mut raw = zstd::bulk::decompress(&frame, 64 << 20).unwrap();
        edit(&mut raw);
        let again = zstd::bulk::compress(&raw, 3).unwrap();
        let update = format!("UPDATE blocks SET {column} = ?2 WHERE first_seq = ?1");
        conn.execute(&update, params![f, again]).unwrap();
    });
    (v, first)
}

#[test]
fn a_record_changed_inside_a_recompressed_frame_is_reported_at_its_block() {
    // The 4th record's last byte (a line byte): the frame is valid, the chain is not.
    let (v, first) = recompressed("records", |raw| {
        let mut pos = 0;
        for _ in 0..4 {
            let len = u32::from_be_bytes(raw[pos..pos + 4].try_into().unwrap()) as usize;
            pos += 4 + len;
        }
        raw[pos - 1] ^= 0x01;
    });
    assert_break(&v, &name(1), Some(first), Some("modified"));
    let what = v.first_break()["what"].as_str().unwrap().to_owned();
    assert!(what.contains("end head"), "{what}");
    assert!(what.contains(&format!("records {first}..=")), "{what}");
}

#[test]
fn a_column_that_disagrees_with_its_records_is_reported() {
    // The first timestamp delta moved by one (a zigzag varint right after the count).
    let (v, first) = recompressed("columns", |raw| {
        let count_len = raw.iter().position(|b| b & 0x80 == 0).unwrap() + 1;
        raw[count_len] ^= 0x02;
    });
    assert_break(&v, &name(1), Some(first), Some("modified"));
    assert_names(&v, "what", "blocks.columns");
}

#[test]
fn a_forged_list_of_metadata_names_is_reported() {
    // The records hold no metadata: the list, last in the columns, is empty (one 0 byte). Any
    // other list (here one name) is not what the records give.
    let (v, first) = recompressed("columns", |raw| {
        assert_eq!(raw.last(), Some(&0));
        raw.pop();
        raw.extend_from_slice(b"\x01\x08trace_id");
    });
    assert_break(&v, &name(1), Some(first), Some("modified"));
    assert_names(&v, "what", "blocks.columns");
}

#[test]
fn a_forged_token_filter_that_hides_the_records_is_reported() {
    // An empty filter: searches would skip the block as holding no word at all.
    for forged in ["x''", "zeroblob(length(tokens))"] {
        let (v, first) = on_middle_block(&format!(
            "UPDATE blocks SET tokens = {forged} WHERE first_seq = ?1"
        ));
        assert_break(&v, &name(1), Some(first), Some("modified"));
        assert_names(&v, "what", "blocks.tokens");
    }
}

#[test]
fn a_frame_that_claims_too_much_is_refused_without_allocating_it() {
    // A valid zstd frame of 1 GiB of zeros is a few KiB: verify must refuse it by its header.
    let mut first = 0;
    let v = tampered(|d| {
        let (path, f) = middle(d);
        first = f;
        let bomb = zstd::bulk::compress(&vec![0u8; 1 << 30], 1).unwrap();
        open_rw(&path)
            .execute(
                "UPDATE blocks SET records = ?2, raw_bytes = ?3 WHERE first_seq = ?1",
                params![f, bomb, 1i64 << 30],
            )
            .unwrap();
    });
    assert_break(&v, &name(1), Some(first), Some("modified"));
    assert_names(&v, "found", "more than");
}

#[test]
fn a_closed_segment_must_have_its_index_by_stream_and_the_open_one_must_not() {
    let v = tampered(|d| {
        open_rw(&segment_files(d)[1])
            .execute_batch("DROP INDEX block_streams_by_stream")
            .unwrap();
    });
    assert_break(&v, &name(1), None, Some("schema_changed"));
    let last = segment_files(base()).len() - 1;
    let v = tampered(|d| {
        open_rw(segment_files(d).last().unwrap())
            .execute_batch(
                "CREATE INDEX block_streams_by_stream ON block_streams (stream_id, max_ts_ns)",
            )
            .unwrap();
    });
    assert_break(&v, &name(last), None, Some("schema_changed"));
}
