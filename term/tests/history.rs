//! Scrollback history: which lines the emulator records, and how a server
//! state's history reaches a client's inbox through diffs, including lines
//! the server no longer keeps.

use mosh_proto::State;
use mosh_term::history::{
    HistoryEntry, HistoryInbox, HistoryLimits, HistoryLog, decode_line, gap_marker,
};
use mosh_term::{Color, Complete, Emulator, Renditions};

fn recording(width: usize, height: usize, lines: usize) -> (Emulator, HistoryLog) {
    let log = HistoryLog::new(HistoryLimits::lines(lines));
    let mut emulator = Emulator::new(width, height);
    emulator.set_history(log.clone());
    (emulator, log)
}

fn texts(log: &HistoryLog) -> Vec<String> {
    log.span(0, log.end())
        .lines
        .iter()
        .map(|line| String::from_utf8_lossy(line).into_owned())
        .collect()
}

fn numbers(from: usize, to: usize) -> String {
    (from..=to).map(|n| format!("{n}\r\n")).collect()
}

#[test]
fn lines_leaving_the_top_of_the_main_screen_are_recorded_in_order() {
    let (mut emulator, log) = recording(20, 5, 100);
    emulator.feed(numbers(1, 10).as_bytes());
    assert_eq!(log.end(), 6, "ten lines and the cursor's row on five rows");
    assert_eq!(texts(&log), ["1", "2", "3", "4", "5", "6"]);
    emulator.feed(b"\x1b[2S");
    assert_eq!(texts(&log)[6..], ["7", "8"], "SU scrolls into history too");
}

#[test]
fn a_region_starting_at_the_top_counts_but_other_regions_and_the_alternate_screen_do_not() {
    let (mut emulator, log) = recording(20, 5, 100);
    emulator.feed(b"\x1b[1;4r\x1b[4;1Hkeep\n");
    assert_eq!(texts(&log), [""], "region 1-4 starts at the top row");
    emulator.feed(b"\x1b[2;5r\x1b[5;1H\n\n\n\x1b[r");
    assert_eq!(log.end(), 1, "region 2-5 adds nothing");
    emulator.feed(b"\x1b[?1049h");
    emulator.feed(numbers(1, 20).as_bytes());
    emulator.feed(b"\x1b[?1049l");
    assert_eq!(log.end(), 1, "the alternate screen adds nothing");
}

#[test]
fn colours_and_wide_characters_survive_the_trip() {
    let (mut emulator, log) = recording(20, 2, 100);
    emulator.feed("\x1b[1;32mgreen\x1b[0m 漢字\r\n\r\n".as_bytes());
    let line = log.span(0, 1).lines[0].clone();
    let row = decode_line(&line);
    assert_eq!(row.cells()[0].contents(), "g");
    assert!(
        row.cells()[0]
            .rend
            .attrs
            .contains(mosh_term::framebuffer::Attrs::BOLD)
    );
    assert_eq!(row.cells()[6].contents(), "漢");
    assert!(row.cells()[6].wide);
    assert_eq!(row.cells()[8].contents(), "字");
}

/// A server state of `emulator`'s screen including history up to `end`.
fn server_state(emulator: &Emulator, log: &HistoryLog, end: u64) -> Complete {
    let mut state =
        Complete::from_framebuffer(emulator.framebuffer().clone()).with_history_log(log.clone());
    state.set_history_end(end);
    state
}

fn inbox_texts(entries: &[HistoryEntry]) -> Vec<String> {
    entries
        .iter()
        .map(|entry| match entry {
            HistoryEntry::Line(bytes) => String::from_utf8_lossy(bytes).into_owned(),
            HistoryEntry::Gap(n) => gap_marker(*n),
        })
        .collect()
}

#[test]
fn a_diff_carries_the_lines_and_the_client_files_them() {
    let (mut emulator, log) = recording(20, 3, 100);
    let before = server_state(&emulator, &log, 0);
    emulator.feed(numbers(1, 6).as_bytes());
    let after = server_state(&emulator, &log, log.end());
    let inbox = HistoryInbox::default();
    let mut client = Complete::new(20, 3).with_history_inbox(inbox.clone());
    client.apply(&after.diff_from(&before)).unwrap();
    assert_eq!(client.history_end(), 4);
    assert!(client.framebuffer().same_picture(after.framebuffer()));
    assert_eq!(inbox_texts(&inbox.take(0, 4)), ["1", "2", "3", "4"]);
}

#[test]
fn lines_no_longer_kept_become_one_marker() {
    let (mut emulator, log) = recording(20, 3, 5);
    let before = server_state(&emulator, &log, 0);
    emulator.feed(numbers(1, 1002).as_bytes());
    let after = server_state(&emulator, &log, log.end());
    let inbox = HistoryInbox::default();
    let mut client = Complete::new(20, 3).with_history_inbox(inbox.clone());
    client.apply(&after.diff_from(&before)).unwrap();
    let got = inbox_texts(&inbox.take(0, client.history_end()));
    assert_eq!(
        got,
        [
            "[mosh: 995 lines not kept]",
            "996",
            "997",
            "998",
            "999",
            "1000"
        ]
    );
}

#[test]
fn states_without_history_send_exactly_what_they_did() {
    let mut emulator = Emulator::new(20, 3);
    let before = Complete::from_framebuffer(emulator.framebuffer().clone());
    emulator.feed(numbers(1, 6).as_bytes());
    let plain = Complete::from_framebuffer(emulator.framebuffer().clone());
    let (_, log) = recording(20, 3, 100);
    let with_log = Complete::from_framebuffer(emulator.framebuffer().clone()).with_history_log(log);
    assert_eq!(plain.diff_from(&before), with_log.diff_from(&before));
}

#[test]
fn history_that_goes_backwards_or_does_not_add_up_is_refused() {
    let (mut emulator, log) = recording(20, 3, 100);
    emulator.feed(numbers(1, 6).as_bytes());
    let at_four = server_state(&emulator, &log, 4);
    let mut client = Complete::new(20, 3).with_history_inbox(HistoryInbox::default());
    client
        .apply(&at_four.diff_from(&server_state(&emulator, &log, 0)))
        .unwrap();
    let backwards = server_state(&emulator, &log, 2).diff_from(&server_state(&emulator, &log, 4));
    let copy = client.clone();
    assert!(client.apply(&backwards).is_err());
    assert_eq!(client, copy, "a refused diff changes nothing");
}

/// A host message whose history instructions go back (lines 0..3 to end
/// 3, then line 0 to end 1) would leave lines above the state's history
/// end in the client's inbox, where nothing ever takes them: refused.
#[test]
fn history_that_goes_back_within_one_message_is_refused() {
    use mosh_proto::messages::{HistoryLines, HostInstruction, HostMessage};
    use prost::Message;

    let lines = |first: u64, texts: &[&str]| HostInstruction {
        history: Some(HistoryLines {
            end: Some(first + texts.len() as u64),
            first: Some(first),
            lines: texts.iter().map(|t| t.as_bytes().to_vec()).collect(),
        }),
        ..HostInstruction::default()
    };
    let message = HostMessage {
        instruction: vec![lines(0, &["a", "b", "c"]), lines(0, &["a"])],
    };
    let inbox = HistoryInbox::default();
    let mut state = Complete::new(80, 24).with_history_inbox(inbox.clone());
    assert!(state.apply(&message.encode_to_vec()).is_err());
    assert_eq!(state.history_end(), 0);
    assert!(inbox.is_empty());

    let forward = HostMessage {
        instruction: vec![lines(0, &["a"]), lines(1, &["b", "c"])],
    };
    state.apply(&forward.encode_to_vec()).unwrap();
    assert_eq!(state.history_end(), 3);
    assert_eq!(inbox.take(0, 3).len(), 3);
    assert!(inbox.is_empty());
}

/// Every row's cells from its extent on are blank in the default rendition.
fn assert_extents_hold(emulator: &Emulator, after: &str) {
    let fb = emulator.framebuffer();
    for (n, row) in fb.rows().iter().enumerate() {
        let tail = &row.cells()[row.extent()..];
        assert!(
            tail.iter()
                .all(|c| c.is_blank() && c.rend == Renditions::default()),
            "row {n} has a used cell beyond its extent {} after {after:?}",
            row.extent()
        );
    }
}

#[test]
fn a_rows_extent_covers_every_cell_in_use_after_every_kind_of_edit() {
    let mut emulator = Emulator::new(20, 4);
    let edits = [
        "plain",
        "\x1b[2;3H\x1b[41m\x1b[K\x1b[0m",
        "\x1b[3;1H\x1b[44m\x1b[5X\x1b[0m",
        "\x1b[1;1Hab\x1b[1;1H\x1b[4@",
        "\x1b[1;1H\x1b[45m\x1b[2P\x1b[0m",
        "\x1b[4;18H界",
        "\x1b[4;1He\u{301}",
        "\x1b[42m\r\n\r\n\r\n\r\n\x1b[0m",
        "\x1b[43m\x1b[2J\x1b[0m",
        "\x1b#8",
        "\x1b[0m\x1b[2J\x1b[1;19H\x1b[46mzz",
    ];
    for edit in edits {
        emulator.feed(edit.as_bytes());
        assert_extents_hold(&emulator, edit);
    }
    emulator.resize(30, 4);
    assert_extents_hold(&emulator, "widening");
    emulator.resize(10, 4);
    assert_extents_hold(&emulator, "narrowing");
    let mut cell = emulator.framebuffer().row(0).cells()[0];
    cell.rend.bg = Color::Indexed(1);
    emulator.framebuffer_mut().set_cell(2, 9, cell);
    assert_extents_hold(&emulator, "set_cell");
}

#[test]
fn text_written_anywhere_in_a_row_is_recorded_when_it_scrolls_off() {
    let (mut emulator, log) = recording(20, 2, 100);
    emulator.feed(b"\x1b[1;15Hright\x1b[2;1H\r\n");
    emulator.feed(b"\x1b[41m\x1b[K\x1b[0m\r\n\r\n");
    assert_eq!(
        texts(&log),
        [
            "              right",
            "",
            "\x1b[0;41m                    \x1b[0m"
        ]
    );
}
