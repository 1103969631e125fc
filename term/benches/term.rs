//! Benchmarks: emulator throughput on plain, colour-heavy, cursor-heavy and
//! non-ASCII input (Latin-1, CJK, combining marks, emoji: each character's
//! width is looked up); `new_frame` cost for a one-cell and a full-screen
//! change; and the size of `new_frame` output for typical updates (printed
//! once); the cost of the framebuffer snapshot SSP keeps per state.
#![allow(
    clippy::print_stdout,
    reason = "a benchmark's report, not a program we ship"
)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mosh_term::{Display, Emulator};

fn plain_text() -> Vec<u8> {
    let mut v = Vec::new();
    for i in 0..20_000 {
        v.extend_from_slice(
            format!("line {i}: the quick brown fox jumps over the lazy dog\r\n").as_bytes(),
        );
    }
    v
}

fn colour_text() -> Vec<u8> {
    let mut v = Vec::new();
    for i in 0..100_000u32 {
        let c = i % 256;
        v.extend_from_slice(
            format!("\x1b[38;5;{c};48;2;{};{};{}mxy", c, 255 - c, i % 7).as_bytes(),
        );
        if i % 40 == 39 {
            v.extend_from_slice(b"\x1b[0m\r\n");
        }
    }
    v
}

fn cursor_text() -> Vec<u8> {
    let mut v = Vec::new();
    for i in 0..100_000u32 {
        v.extend_from_slice(
            format!("\x1b[{};{}H*\x1b[K\x1b[2X", i % 24 + 1, i % 80 + 1).as_bytes(),
        );
    }
    v
}

fn unicode_text() -> Vec<u8> {
    let mut v = Vec::new();
    for i in 0..10_000 {
        v.extend_from_slice(
            format!(
                "{i}: Grüße, naïve café ½ ± × ÷ │ 漢字かなカナ한국어 e\u{301}a\u{308} 😀 →✓\r\n"
            )
            .as_bytes(),
        );
    }
    v
}

fn throughput(c: &mut Criterion) {
    let mut group = c.benchmark_group("emulator");
    for (name, input) in [
        ("plain", plain_text()),
        ("colour", colour_text()),
        ("cursor", cursor_text()),
        ("unicode", unicode_text()),
    ] {
        group.throughput(Throughput::Bytes(input.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut emu = Emulator::new(80, 24);
                emu.feed(black_box(&input));
                black_box(emu.framebuffer().cell(0, 0).rend);
            })
        });
    }
    group.finish();
}

fn frames(c: &mut Criterion) {
    let mut emu = Emulator::new(80, 24);
    emu.feed(&plain_text()[..4000]);
    let a = emu.framebuffer().clone();
    emu.feed(b"\x1b[5;10HX");
    let one_cell = emu.framebuffer().clone();
    let mut full = Emulator::new(80, 24);
    full.feed(&colour_text()[..20000]);
    let full_change = full.framebuffer().clone();
    let mut scrolled = Emulator::from_framebuffer(a.clone());
    scrolled.feed(b"\x1b[24;1Hone more line\r\n");
    let scroll = scrolled.framebuffer().clone();
    let mut typed = Emulator::from_framebuffer(a.clone());
    typed.feed(b"x");
    let typed = typed.framebuffer().clone();

    let display = Display::server();
    for (name, new) in [
        ("one_cell", &one_cell),
        ("typed_char", &typed),
        ("scroll_one_line", &scroll),
        ("full_screen", &full_change),
    ] {
        let bytes = display.new_frame(true, &a, new);
        println!("new_frame output size, {name}: {} bytes", bytes.len());
    }
    println!(
        "new_frame output size, repaint: {} bytes",
        display.new_frame(false, &a, &full_change).len()
    );

    let mut group = c.benchmark_group("new_frame");
    group.bench_function("one_cell", |b| {
        b.iter(|| black_box(display.new_frame(true, black_box(&a), black_box(&one_cell))))
    });
    group.bench_function("full_screen", |b| {
        b.iter(|| black_box(display.new_frame(true, black_box(&a), black_box(&full_change))))
    });
    group.bench_function("snapshot_clone", |b| b.iter(|| black_box(a.clone())));
    group.bench_function("unchanged", |b| {
        b.iter(|| black_box(display.new_frame(true, black_box(&a), black_box(&a))))
    });
    group.finish();
}

criterion_group!(benches, throughput, frames);
criterion_main!(benches);
