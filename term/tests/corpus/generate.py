#!/usr/bin/env python3
"""Regenerates the differential-test corpus (the outputs are committed; run
this only to refresh them). Hand-written files exercise one feature each;
rec_* files are recorded output of real programs."""

import os
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
E = "\x1b"
CSI = E + "["


def write(name, data):
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(data)


def lines(n, fmt):
    return "".join(fmt.format(i=i) for i in range(n))


write("c0_controls.bin",
      "abc\bX\tTAB\tT2\r\nline2\x0bVT\x0cFF\x00NUL\x07bell\r\n"
      "12345678901234567890\r\b\b\bZ\r\n\t\t\t\t\t\t\t\t\t\t\t\tend\r\n")
write("cursor_motion.bin",
      CSI + "2J" + CSI + "5;10H*" + CSI + "3A+" + CSI + "2B-" + CSI + "4C>" + CSI + "7D<"
      + CSI + "10;20f#" + CSI + "15d@" + CSI + "33G!" + CSI + "40`%" + CSI + "2E^"
      + CSI + "1F&" + CSI + "0A0" + CSI + "999;999HZ" + CSI + "999A" + CSI + "999D"
      + "top-left" + CSI + "H" + CSI + "1;1HQ" + CSI + "20;5H")
write("erase.bin",
      lines(24, "{i:02d} the quick brown fox jumps over the lazy dog 0123456789 abcdefghij\r\n")
      + CSI + "3;10H" + CSI + "K" + CSI + "4;10H" + CSI + "1K" + CSI + "5;10H" + CSI + "2K"
      + CSI + "44m" + CSI + "6;10H" + CSI + "K" + CSI + "7;5H" + CSI + "5X"
      + CSI + "48;5;196m" + CSI + "8;20H" + CSI + "10X" + CSI + "48;2;10;200;30m"
      + CSI + "9;30H" + CSI + "1K" + CSI + "0m" + CSI + "12;40H" + CSI + "1J"
      + CSI + "43m" + CSI + "18;30H" + CSI + "J" + CSI + "0mdone")
write("erase_all.bin", lines(10, "text {i}\r\n") + CSI + "41m" + CSI + "2J" + CSI + "0m" + "after")
write("insert_delete.bin",
      lines(20, "{i:02d}:ABCDEFGHIJKLMNOPQRSTUVWXYZ abcdefghijklmnopqrstuvwxyz\r\n")
      + CSI + "2;5H" + CSI + "3@" + CSI + "3;5H" + CSI + "4P" + CSI + "42m" + CSI + "4;1H"
      + CSI + "10@" + CSI + "5;70H" + CSI + "20P" + CSI + "0m" + CSI + "8;3H" + CSI + "2L"
      + "inserted" + CSI + "12;9H" + CSI + "3M" + "deleted" + CSI + "0L" + CSI + "30M")
write("scroll_region.bin",
      lines(24, "row {i:02d} ..........\r\n").rstrip("\r\n")
      + CSI + "5;15r" + CSI + "15;1H" + "\n\n\nnew1\r\nnew2" + CSI + "5;1H" + E + "M" + E + "Mrev"
      + CSI + "2S" + CSI + "3T" + CSI + "10;1H" + E + "D" + E + "Enel" + CSI + "r"
      + CSI + "24;1H\r\nbottom\r\n" + CSI + "3;6r" + CSI + "4;1H" + CSI + "2L" + CSI + "1M"
      + CSI + "r" + CSI + "99;100r" + CSI + "10;5r" + "x")
write("scroll_su_sd.bin", lines(24, "line {i}\r\n")[:-2] + CSI + "10;1H" + CSI + "4S" + CSI + "2T" + "cursor")
write("autowrap.bin", "".join("E" * 80 + "\r\n" for _ in range(25)))
write("autowrap_deferred.bin",
      "A" * 80 + "B" + CSI + "3;1H" + "C" * 80 + "\r" + "x" + CSI + "5;1H" + "D" * 80
      + "\r\nnext" + CSI + "9;1H" + CSI + "?7l"
      + "G" * 90 + CSI + "?7h" + CSI + "11;1H" + "H" * 160 + "I" * 5)
write("pending_wrap_edits.bin",
      "".join(("a" * 80 + CSI + seq + "x" + "\r\n") for seq in ["K", "1K", "2K", "X", "3X", "@", "P", "C", "A", "Z"])
      + "b" * 80 + CSI + "1J" + "y" + CSI + "12;1H" + "c" * 80 + CSI + "J" + "z")
write("origin_mode.bin",
      CSI + "5;10r" + CSI + "?6h" + CSI + "1;1Horigin" + CSI + "99;1Hbottom" + CSI + "3A up"
      + CSI + "?6l" + CSI + "1;1Habsolute" + CSI + "r")
write("insert_mode.bin", "0123456789abcdefghij" + CSI + "1;5H" + CSI + "4hINS" + CSI + "4l" + "ov"
      + CSI + "2;1H" + "x" * 78 + CSI + "2;3H" + CSI + "4hWXYZ" + CSI + "4l")
write("tabs.bin",
      "a\tb\tc\r\n" + CSI + "3g" + CSI + "1;5H" + E + "H" + CSI + "1;15H" + E + "H"
      + CSI + "1;30H" + E + "H" + "\r\n\tx\ty\tz\tw\r\n" + CSI + "1;15H" + CSI + "0g" + "\r\n\tp\tq\r\n"
      + CSI + "3g" + "\r\n\ttab-none" + E + "c" + "\tdefault\r\n" + "forw" + CSI + "Zback"
      + CSI + "99Zstart" + CSI + "2Z" + "two")
write("decsc.bin",
      CSI + "5;5H" + CSI + "1;31m" + E + "7" + CSI + "0m" + CSI + "10;10Hmoved" + E + "8" + "restored"
      + CSI + "12;12H" + CSI + "s" + CSI + "1;1H" + CSI + "u" + "scosc")
write("altscreen.bin",
      lines(5, "primary {i}\r\n") + CSI + "?1049h" + CSI + "Halt screen 1049" + CSI + "10;10Hx"
      + CSI + "?1049l" + "back" + CSI + "?1047h" + "alt47" + CSI + "?1047l" + CSI + "?47h" + "in47"
      + CSI + "?47l")
write("altscreen_left_on.bin", "primary\r\n" + CSI + "?1049h" + CSI + "44m" + CSI + "2J" + CSI + "5;5Hstill in alt")
write("sgr_attrs.bin",
      "".join(CSI + f"{a}m attr{a} " + CSI + "0m\r\n" for a in [1, 2, 3, 4, 5, 7, 8])
      + CSI + "1;3;4;5;7mall" + CSI + "22mno-bold" + CSI + "23mno-it" + CSI + "24mno-ul"
      + CSI + "25mno-bl" + CSI + "27mno-inv" + CSI + "8mhid" + CSI + "28mvis" + CSI + "m\r\n"
      + CSI + "1;2mbolddim" + CSI + "22mnormal\r\n" + CSI + "7;44m inverse-bg " + CSI + "0m\r\n")
# Attributes stock mosh cannot carry; tmux 3.3a keeps all of them but the
# OSC 8 hyperlinks.
write("sgr_extended.bin",
      CSI + "9mstrike" + CSI + "29m off " + CSI + "21mdouble" + CSI + "24m off "
      + CSI + "4:2mdbl" + CSI + "4:0mnone\r\n"
      + "".join(CSI + f"4:{n}mstyle{n}" + CSI + "0m " for n in range(6)) + "\r\n"
      + CSI + "4;58;5;196mul-idx" + CSI + "59mul-default" + CSI + "0m "
      + CSI + "4:3;58:2::10:200:30mcurly-rgb" + CSI + "0m "
      + CSI + "4:3;58;2;10;200;30mcurly-rgb-semi" + CSI + "0m\r\n"
      + CSI + "58:5:9;4:4mdotted-9" + CSI + "0m " + CSI + "4:5;58:2:1:2:3mdashed" + CSI + "0m "
      + CSI + "53moverline" + CSI + "55m off " + CSI + "9;53;4:3;58;5;21mall" + CSI + "0m\r\n"
      + CSI + "38:2::200:100:50;48:5:17mcolon-fg-bg" + CSI + "0m "
      + CSI + "38:2:1:2:3;48;5;18;1mcolon-nocs" + CSI + "0m "
      + CSI + "38;2;9;8;7;4mafter-rgb" + CSI + "0m " + CSI + "1;58;5;3;3mbold-italic" + CSI + "0m\r\n"
      + E + "]8;id=x;http://example.com/a" + E + "\\" + CSI + "9mlinked" + CSI + "0m-still"
      + E + "]8;;" + E + "\\" + " unlinked " + E + "]8;;file:///tmp/f\x07f" + E + "]8;;\x07" + "\r\n"
      + CSI + "4:3;58;5;196;9m" + CSI + "2K" + "erased-in-ext" + CSI + "0m")
write("sgr_16colors.bin",
      "".join(CSI + f"{30 + f}m" + "".join(CSI + f"{40 + b}m{f}{b} " for b in range(8)) + CSI + "0m\r\n" for f in range(8))
      + "".join(CSI + f"{90 + f};{100 + (7 - f)}m bright{f} " for f in range(8)) + CSI + "39;49m\r\n"
      + CSI + "1;31mbold-red" + CSI + "39mdefault-fg" + CSI + "0m\r\n")
write("sgr_256colors.bin",
      "".join(
          "".join(CSI + f"48;5;{r * 16 + c}m{r * 16 + c:4d}" for c in range(16)) + CSI + "0m\r\n"
          for r in range(16))
      + "".join(CSI + f"38;5;{n}m#" for n in range(0, 256, 4)) + CSI + "0m")
write("sgr_truecolor.bin",
      "".join(
          "".join(CSI + f"48;2;{r * 16};{c * 3};{255 - r * 16}m" + CSI + f"38;2;{c * 3};{r * 16};9m:" for c in range(80))
          + CSI + "0m\r\n" for r in range(16))
      + CSI + "38:2::10:20:30mcolon-rgb" + CSI + "38:5:123mcolon-256" + CSI + "0m")
write("unicode.bin",
      "ASCII and Latin-1: caf\u00e9 na\u00efve \u00fc\u00f1\u00ee\u00e7\u00f8d\u00e9 \u00a1\u00bfQu\u00e9?\r\n"
      "CJK: \u6f22\u5b57\u4eee\u540d\u6df7\u3058\u308a\u6587 \uc548\ub155\ud558\uc138\uc694\r\n"
      "Fullwidth: \uff21\uff22\uff23\uff11\uff12\uff13\r\n"
      "Emoji: \U0001F600 \U0001F680 \U0001F44D \U0001F389 end\r\n"
      "Combining: e\u0301 a\u0300 o\u0302 n\u0303 u\u0308\u0304 z\u0327\u030c\r\n"
      "Greek/Cyrillic: \u03b1\u03b2\u03b3 \u0436\u0437\u0438\u0439\r\n"
      "Box: \u250c\u2500\u2500\u2510\u2502\u2514\u2500\u2518 \u2588\u2593\u2592\u2591\r\n")
# Widths as the C library gives them (glibc's wcwidth, which tmux uses too):
# printable Latin-1 (the soft hyphen takes a cell), and characters whose
# width unicode-width 0.2 gives otherwise. Each line ends with a bar at an
# absolute column, so a width counted wrong shows as a shifted bar.
write("widths.bin",
      "".join(line + CSI + "40G|\r\n" for line in
              ["".join(chr(c) for c in range(r, r + 16) if c != 0x7f)
               for r in list(range(0x20, 0x80, 16)) + list(range(0xa0, 0x100, 16))]
              + ["Hangul: \u302e\u302f \u3164 \uffa0 \u1100\u1160\u11a8",
                 "Trigrams: \u2630\u2631\u2632\u2633\u2634\u2635\u2636\u2637",
                 "Hexagrams: \u4dc0\u4dc1\u4dc2\u4dc3",
                 "Marks: \u0915\u093e\u0903 \u2e3b \U0001F1E6\U0001F1E8"]))
write("wide_edges.bin",
      ("x" * 79 + "\u6f22after-wrap\r\n" + "\u6f22\u5b57\u6f22\u5b57" + CSI + "3D" + "n" + "\r\n"
       + CSI + "6;79H\u5b57\u5b57").encode())
write("modes.bin",
      CSI + "?1h" + E + "=" + CSI + "?2004h" + CSI + "?1000h" + CSI + "?1002h" + CSI + "?1006h"
      + CSI + "?25l" + CSI + "?7l" + CSI + "4h" + E + "]0;window title" + "\x07" + E + "]52;c;aGVsbG8=\x07"
      + "\x07modes set")
write("modes_reset.bin",
      CSI + "?1h" + CSI + "?1003h" + CSI + "?1005h" + CSI + "?1l" + CSI + "?1003l" + CSI + "?1005l"
      + E + "]2;title two" + E + "\\" + "text")
write("unknown_sequences.bin",
      "before " + E + "P1$r0m" + E + "\\" + "dcs " + E + "_apc" + E + "\\" + E + "^pm" + E + "\\" + E + "Xsos" + E + "\\"
      + CSI + "5;6;7y" + CSI + ">4;2m" + CSI + "?1049$p" + CSI + "c" + CSI + ">c" + CSI + "6n" + CSI + "5n"
      + CSI + "2 q" + CSI + "18t" + E + "]8;;http://example.com\x07link" + E + "]8;;\x07"
      + E + "(B" + E + ")0" + E + "]1337;foo\x07" + "X" + CSI + "=5u" + "end\r\n"
      + E + "[" + "1;2;3;4;5;6;7;8;9;10;11;12;13;14;15;16;17;18;19;20;21;22;23;24;25;26;27;28;29;30;31;32;33;34;35m" + "many" + CSI + "0m")
write("decaln_ris.bin", "junk" + E + "#8" + CSI + "5;5H" + "x" + CSI + "10;1H" + E + "c" + "after reset")
write("rep.bin", "ab" + CSI + "5b" + "\r\n" + "x" + CSI + "100b")
write("deccolm.bin", "text\r\nmore" + CSI + "?3h" + "after3")

# A less/vi-like full-screen repaint, written by hand with xterm sequences.
pager = CSI + "?1049h" + CSI + "22;0;0t" + CSI + "?1h" + E + "=" + CSI + "H" + CSI + "2J"
for i in range(23):
    pager += CSI + f"{i + 1};1H" + f"{i + 100} text of the document line {i}" + CSI + "K"
pager += CSI + "24;1H" + CSI + "7m" + "document.txt lines 1-23/200 11%" + CSI + "27m" + CSI + "K"
pager += CSI + "1;23r" + CSI + "23;1H" + "\n" + "123 scrolled in" + CSI + "K" + CSI + "r"
pager += CSI + "H" + E + "M" + "099 reverse scrolled" + CSI + "K" + CSI + "24;1H" + CSI + "K" + ":"
write("pager_like.bin", pager)


def record(name, cmd, stdin_input=None, env_extra=None):
    env = dict(os.environ, LANG="C.UTF-8", LC_ALL="C.UTF-8", TERM="xterm-256color", COLUMNS="80", LINES="24")
    if env_extra:
        env.update(env_extra)
    out = subprocess.run(["bash", "-c", cmd], input=stdin_input, capture_output=True, env=env).stdout
    write(name, out.replace(b"\n", b"\r\n"))


record("rec_ls_color.bin", "ls --color=always -la /usr/share/doc | head -40")
record("rec_ls_color_wide.bin", "ls --color=always -C -w 80 /usr/bin | head -30")
record("rec_top.bin", "top -b -n1 -w 80 | head -30")


def record_tty(name, cmd, keys):
    """Runs a full-screen program under script(1) at 80x24, typing keys."""
    path = os.path.join(HERE, name)
    env = dict(os.environ, LANG="C.UTF-8", LC_ALL="C.UTF-8", TERM="xterm-256color")
    feeder = f"sleep 1; printf '{keys}'; sleep 1"
    subprocess.run(
        ["bash", "-c", f"({feeder}) | script -q -E always -O {path} -c 'stty rows 24 cols 80; {cmd}' > /dev/null"],
        env=env, check=False)
    with open(path, "rb") as f:
        data = f.read()
    # script(1) adds a "Script started"/"done" header and footer line.
    start = data.find(b"\n") + 1 if data.startswith(b"Script started") else 0
    end = data.rfind(b"\nScript done")
    write(name, data[start:end if end >= 0 else len(data)])


record_tty("rec_less.bin", "less /usr/share/common-licenses/GPL-3", " \\x1b[Bq")
record_tty("rec_vim.bin", "vim -u NONE -N -i NONE /usr/share/common-licenses/Apache-2.0", "jjjjjjjjjjjjjjjjjjjjjjjjjjjjjjjj:syntax on\\r:qa!\\r")
