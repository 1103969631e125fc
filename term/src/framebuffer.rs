//! The screen model: cells (grapheme text, width, renditions with their
//! extended attributes and hyperlink), rows with generation ids and wrap
//! flags, the drawing state (cursor, modes, tab stops, scroll region, saved
//! cursor), window title, clipboard, bell counter, the alternate screen and
//! the hyperlink table cells refer to. Editing primitives used by the
//! emulator live here too.
//!
//! A cell is 54 bytes: 32 of UTF-8, its length, the wide and spacer flags
//! and an 18-byte [`Renditions`] (two colours and the underline colour, 4
//! bytes each; 16 bits of attributes; the underline style; a 16-bit
//! [`LinkId`]). Hyperlinks themselves live once per framebuffer, in a table
//! shared copy-on-write between snapshots like the rows.
//!
//! Memory is bounded by the screen size: sizes are clamped to
//! [`MAX_WIDTH`]×[`MAX_HEIGHT`], a cell holds at most [`CELL_BYTES`] bytes of
//! UTF-8, titles at most [`MAX_TITLE_CHARS`] characters, the clipboard at
//! most [`MAX_CLIPBOARD_BYTES`] bytes, and the hyperlink table at most
//! [`MAX_LINKS`] links of at most [`MAX_LINK_URI_BYTES`] +
//! [`MAX_LINK_ID_BYTES`] bytes.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Largest supported number of columns; larger requests are clamped.
pub const MAX_WIDTH: usize = 1000;
/// Largest supported number of rows; larger requests are clamped.
pub const MAX_HEIGHT: usize = 1000;
/// Bytes of UTF-8 a cell can hold (base character plus combining marks);
/// further combining marks are dropped.
pub const CELL_BYTES: usize = 32;
/// Longest window title or icon name kept, in characters.
pub const MAX_TITLE_CHARS: usize = 256;
/// Longest clipboard (OSC 52 payload) kept, in bytes.
pub const MAX_CLIPBOARD_BYTES: usize = 65536;
/// Most distinct hyperlinks a screen (both screens and the drawing state)
/// refers to; links opened beyond that are dropped (their text is shown
/// without a link).
pub const MAX_LINKS: usize = 512;
/// Longest hyperlink URI kept, in bytes; longer ones are dropped.
pub const MAX_LINK_URI_BYTES: usize = 2048;
/// Longest hyperlink `id=` parameter kept, in bytes; links with longer ones
/// are dropped.
pub const MAX_LINK_ID_BYTES: usize = 250;

/// A colour as the application selected it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Color {
    /// The terminal's default colour.
    #[default]
    Default,
    /// Palette entry 0–255 (0–7 normal, 8–15 bright, then the 256-colour cube).
    Indexed(u8),
    /// 24-bit colour.
    Rgb(u8, u8, u8),
}

/// Character attributes, as a bit set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Attrs(pub u16);

impl Attrs {
    /// SGR 1.
    pub const BOLD: Attrs = Attrs(1);
    /// SGR 2.
    pub const FAINT: Attrs = Attrs(2);
    /// SGR 3.
    pub const ITALIC: Attrs = Attrs(4);
    /// SGR 4 (any underline style; [`Renditions::underline`] says which).
    pub const UNDERLINE: Attrs = Attrs(8);
    /// SGR 5.
    pub const BLINK: Attrs = Attrs(16);
    /// SGR 7.
    pub const INVERSE: Attrs = Attrs(32);
    /// SGR 8.
    pub const INVISIBLE: Attrs = Attrs(64);
    /// SGR 9: strikethrough (stock mosh cannot carry it).
    pub const STRIKE: Attrs = Attrs(128);
    /// SGR 53: overline (stock mosh cannot carry it).
    pub const OVERLINE: Attrs = Attrs(256);

    /// The attributes stock mosh carries, with their SGR codes, in emission
    /// order.
    pub const ALL: [(Attrs, u8); 7] = [
        (Attrs::BOLD, 1),
        (Attrs::FAINT, 2),
        (Attrs::ITALIC, 3),
        (Attrs::UNDERLINE, 4),
        (Attrs::BLINK, 5),
        (Attrs::INVERSE, 7),
        (Attrs::INVISIBLE, 8),
    ];

    /// The attributes only our own peer is sent, with their SGR codes, in
    /// emission order (after [`Attrs::ALL`]).
    pub const EXTENDED: [(Attrs, u8); 2] = [(Attrs::STRIKE, 9), (Attrs::OVERLINE, 53)];

    /// The bits of [`Attrs::ALL`].
    const STOCK_MASK: u16 = 0x7f;

    /// Whether every bit of `other` is set.
    pub fn contains(self, other: Attrs) -> bool {
        self.0 & other.0 == other.0
    }

    /// Sets or clears the bits of `other`.
    pub fn set(&mut self, other: Attrs, on: bool) {
        if on {
            self.0 |= other.0;
        } else {
            self.0 &= !other.0;
        }
    }
}

/// The style of an underline (SGR `4:n` and 21), meaningful while
/// [`Attrs::UNDERLINE`] is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum UnderlineStyle {
    /// `4` or `4:1`.
    #[default]
    Single,
    /// `4:2` or `21`.
    Double,
    /// `4:3`.
    Curly,
    /// `4:4`.
    Dotted,
    /// `4:5`.
    Dashed,
}

impl UnderlineStyle {
    /// The style of `4:n`; `None` for 0 (no underline) and unknown styles.
    pub fn from_code(n: u16) -> Option<UnderlineStyle> {
        match n {
            1 => Some(UnderlineStyle::Single),
            2 => Some(UnderlineStyle::Double),
            3 => Some(UnderlineStyle::Curly),
            4 => Some(UnderlineStyle::Dotted),
            5 => Some(UnderlineStyle::Dashed),
            _ => None,
        }
    }

    /// The `n` of `4:n`.
    pub fn code(self) -> u8 {
        match self {
            UnderlineStyle::Single => 1,
            UnderlineStyle::Double => 2,
            UnderlineStyle::Curly => 3,
            UnderlineStyle::Dotted => 4,
            UnderlineStyle::Dashed => 5,
        }
    }
}

/// A cell's hyperlink: an index into its framebuffer's hyperlink table
/// ([`Framebuffer::hyperlink`]), or [`LinkId::NONE`]. Ids mean something
/// only together with the table of the framebuffer holding the cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct LinkId(u16);

impl LinkId {
    /// No hyperlink.
    pub const NONE: LinkId = LinkId(0);

    /// Whether this is [`LinkId::NONE`].
    pub fn is_none(self) -> bool {
        self.0 == 0
    }
}

/// How a cell is drawn: colours, attributes and hyperlink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Renditions {
    /// Foreground colour.
    pub fg: Color,
    /// Background colour.
    pub bg: Color,
    /// Attributes.
    pub attrs: Attrs,
    /// Underline style; [`UnderlineStyle::Single`] unless
    /// [`Attrs::UNDERLINE`] is set.
    pub underline: UnderlineStyle,
    /// Underline colour (SGR 58/59).
    pub underline_color: Color,
    /// Hyperlink (OSC 8).
    pub link: LinkId,
}

impl Renditions {
    /// What erased cells get under this rendition (background colour erase):
    /// only the background survives.
    pub fn erased(self) -> Renditions {
        Renditions {
            bg: self.bg,
            ..Renditions::default()
        }
    }

    /// What stock mosh can carry of this rendition: colours and the
    /// attributes of [`Attrs::ALL`] (any underline style as a plain
    /// underline); no underline colour, strikethrough, overline or link.
    pub fn stock(self) -> Renditions {
        Renditions {
            fg: self.fg,
            bg: self.bg,
            attrs: Attrs(self.attrs.0 & Attrs::STOCK_MASK),
            ..Renditions::default()
        }
    }

    /// Whether `self` and `other` look the same to stock mosh:
    /// `self.stock() == other.stock()`, without building either.
    pub fn same_stock(&self, other: &Renditions) -> bool {
        self.fg == other.fg
            && self.bg == other.bg
            && (self.attrs.0 ^ other.attrs.0) & Attrs::STOCK_MASK == 0
    }

    /// Sets the underline: `None` removes it.
    pub fn set_underline(&mut self, style: Option<UnderlineStyle>) {
        self.attrs.set(Attrs::UNDERLINE, style.is_some());
        self.underline = style.unwrap_or_default();
    }
}

/// An OSC 8 hyperlink: its target and its optional `id=` parameter.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Hyperlink {
    /// The `id=` parameter (empty when not given).
    pub id: String,
    /// The URI.
    pub uri: String,
}

impl Hyperlink {
    /// A hyperlink if `uri` (non-empty) and `id` are within
    /// [`MAX_LINK_URI_BYTES`] and [`MAX_LINK_ID_BYTES`] and printable ASCII,
    /// as terminals require; `id` must not contain `:` or `;`.
    pub fn new(id: &[u8], uri: &[u8]) -> Option<Hyperlink> {
        let printable = |s: &[u8]| s.iter().all(|b| (0x20..0x7f).contains(b));
        let ok = !uri.is_empty()
            && uri.len() <= MAX_LINK_URI_BYTES
            && id.len() <= MAX_LINK_ID_BYTES
            && printable(uri)
            && printable(id)
            && !id.iter().any(|&b| b == b':' || b == b';');
        ok.then(|| Hyperlink {
            id: String::from_utf8_lossy(id).into_owned(),
            uri: String::from_utf8_lossy(uri).into_owned(),
        })
    }
}

/// The hyperlinks a framebuffer's cells refer to: slot `i` is [`LinkId`]
/// `i + 1`. Shared copy-on-write between snapshots like rows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct LinkTable {
    slots: Vec<Option<Arc<Hyperlink>>>,
}

impl LinkTable {
    fn get(&self, link: LinkId) -> Option<&Arc<Hyperlink>> {
        let slot = usize::from(link.0).checked_sub(1)?;
        self.slots.get(slot)?.as_ref()
    }

    fn find(&self, link: &Hyperlink) -> Option<LinkId> {
        let slot = self.slots.iter().position(|s| s.as_deref() == Some(link))?;
        Some(LinkId(slot as u16 + 1))
    }

    fn free_slot(&self) -> Option<usize> {
        match self.slots.iter().position(Option::is_none) {
            Some(slot) => Some(slot),
            None => (self.slots.len() < MAX_LINKS).then_some(self.slots.len()),
        }
    }
}

/// One character cell. Blank cells have empty contents (a printed space is
/// stored as blank). A wide character occupies its cell and the next one,
/// which is marked as a spacer. A "fallback" cell (combining marks with no
/// base character) holds U+00A0 followed by the marks, which is also how the
/// display differ prints it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cell {
    text: [u8; CELL_BYTES],
    len: u8,
    /// How the cell is drawn.
    pub rend: Renditions,
    /// The cell holds a double-width character.
    pub wide: bool,
    /// The cell is the right half of the wide character to its left.
    pub spacer: bool,
}

impl PartialEq for Cell {
    fn eq(&self, other: &Cell) -> bool {
        self.rend == other.rend
            && self.wide == other.wide
            && self.spacer == other.spacer
            && self.text[..usize::from(self.len)] == other.text[..usize::from(other.len)]
    }
}

impl Eq for Cell {}

impl Cell {
    /// A blank cell with the given rendition.
    pub fn blank(rend: Renditions) -> Cell {
        Cell {
            rend,
            ..Cell::default()
        }
    }

    /// The cell's text (empty when blank).
    pub fn contents(&self) -> &str {
        std::str::from_utf8(&self.text[..usize::from(self.len)]).unwrap_or("")
    }

    /// The cell's text as UTF-8 bytes (empty when blank), without checking
    /// them again.
    pub fn contents_bytes(&self) -> &[u8] {
        &self.text[..usize::from(self.len)]
    }

    /// Whether the cell looks like `other` to stock mosh: same contents and
    /// [`Renditions::same_stock`].
    pub fn same_stock(&self, other: &Cell) -> bool {
        self.wide == other.wide
            && self.spacer == other.spacer
            && self.text[..usize::from(self.len)] == other.text[..usize::from(other.len)]
            && self.rend.same_stock(&other.rend)
    }

    /// Whether the cell shows nothing but its background.
    pub fn is_blank(&self) -> bool {
        self.len == 0 && !self.wide && !self.spacer
    }

    /// Replaces the contents with one character (a space becomes blank).
    pub fn set_char(&mut self, c: char) {
        self.len = 0;
        if c != ' ' {
            self.push_str(c.encode_utf8(&mut [0; 4]));
        }
    }

    /// Appends a combining character, if it fits in [`CELL_BYTES`].
    pub fn push_char(&mut self, c: char) {
        self.push_str(c.encode_utf8(&mut [0; 4]));
    }

    fn push_str(&mut self, s: &str) {
        let start = usize::from(self.len);
        let end = start + s.len();
        if end <= CELL_BYTES {
            self.text[start..end].copy_from_slice(s.as_bytes());
            self.len = end as u8;
        }
    }
}

static NEXT_GENERATION: AtomicU64 = AtomicU64::new(1);

fn new_generation() -> u64 {
    NEXT_GENERATION.fetch_add(1, Ordering::Relaxed)
}

/// One screen row. Rows are shared copy-on-write between framebuffer
/// snapshots; the generation id names the logical row and changes only when
/// the row is created or cleared as a whole, so scrolling can be recognised.
#[derive(Debug, Clone)]
pub struct Row {
    cells: Vec<Cell>,
    generation: u64,
    /// Every cell from this column on is blank in the default rendition
    /// (an upper bound on what is in use, kept by every edit).
    extent: usize,
    /// The text continues on the next row (an autowrap happened here).
    pub wrap: bool,
}

impl PartialEq for Row {
    /// Same cells, generation and wrap flag (the extent is only a hint).
    fn eq(&self, other: &Row) -> bool {
        self.generation == other.generation && self.wrap == other.wrap && self.cells == other.cells
    }
}

impl Eq for Row {}

/// The column from which a row of `width` cells blanked with `rend` holds
/// only default blanks.
fn blank_extent(width: usize, rend: Renditions) -> usize {
    if rend == Renditions::default() {
        0
    } else {
        width
    }
}

impl Row {
    /// A fresh blank row.
    pub fn new(width: usize, rend: Renditions) -> Row {
        Row {
            cells: vec![Cell::blank(rend); width],
            generation: new_generation(),
            extent: blank_extent(width, rend),
            wrap: false,
        }
    }

    /// The cells, left to right.
    pub fn cells(&self) -> &[Cell] {
        &self.cells
    }

    /// A column from which every cell is blank in the default rendition (at
    /// most the width): what a reader may stop at instead of looking at the
    /// trailing blanks one by one.
    pub fn extent(&self) -> usize {
        self.extent.min(self.cells.len())
    }

    /// The generation id.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Same cells and wrap flag, regardless of the generation.
    pub fn same_content(&self, other: &Row) -> bool {
        self.wrap == other.wrap && self.cells == other.cells
    }

    fn width(&self) -> usize {
        self.cells.len()
    }

    /// Blanks cells `start..end` with `rend`, repairing cut wide characters.
    fn erase(&mut self, start: usize, end: usize, rend: Renditions) {
        let end = end.min(self.width());
        if start >= end {
            return;
        }
        self.cells[start..end].fill(Cell::blank(rend));
        if rend != Renditions::default() {
            self.extent = self.extent.max(end);
        }
        if end == self.width() {
            self.wrap = false;
        }
        if start > 0 && self.cells[start - 1].wide {
            self.cells[start - 1] = Cell::blank(self.cells[start - 1].rend);
        }
        if end < self.width() && self.cells[end].spacer {
            self.cells[end] = Cell::blank(self.cells[end].rend);
        }
    }

    /// Writes a character of width 1 or 2 at `col`, which must fit, blanking
    /// the other half of any wide character it overwrites.
    #[inline]
    fn put(&mut self, col: usize, c: char, wide: bool, rend: Renditions) {
        let w = self.width();
        let span = if wide { 2 } else { 1 };
        for x in col..col + span {
            let (spacer, was_wide) = (self.cells[x].spacer, self.cells[x].wide);
            if spacer && x > 0 {
                self.cells[x - 1] = Cell::blank(self.cells[x - 1].rend);
            }
            if was_wide && x + 1 < w {
                self.cells[x + 1] = Cell::blank(self.cells[x + 1].rend);
            }
        }
        self.extent = self.extent.max(col + span);
        let cell = &mut self.cells[col];
        cell.rend = rend;
        cell.spacer = false;
        cell.set_char(c);
        cell.wide = wide;
        if wide {
            self.cells[col + 1] = Cell {
                spacer: true,
                ..Cell::blank(rend)
            };
        }
        if col + span == w {
            self.wrap = false;
        }
    }

    /// Writes narrow printable ASCII from `col` on, which must fit.
    fn put_ascii(&mut self, col: usize, text: &[u8], rend: Renditions) {
        let w = self.width();
        let end = col + text.len();
        if col > 0 && self.cells[col].spacer {
            self.cells[col - 1] = Cell::blank(self.cells[col - 1].rend);
        }
        if end < w && self.cells[end].spacer {
            self.cells[end] = Cell::blank(self.cells[end].rend);
        }
        self.extent = self.extent.max(end);
        for (cell, &b) in self.cells[col..end].iter_mut().zip(text) {
            cell.text[0] = b;
            cell.len = u8::from(b != b' ');
            cell.rend = rend;
            cell.wide = false;
            cell.spacer = false;
        }
        if end == w {
            self.wrap = false;
        }
    }

    /// Turns this row into a fresh blank one (new generation) in place.
    fn reset(&mut self, rend: Renditions) {
        self.cells.fill(Cell::blank(rend));
        self.extent = blank_extent(self.cells.len(), rend);
        self.generation = new_generation();
        self.wrap = false;
    }

    /// Makes every wide cell be followed by its spacer and every spacer be
    /// preceded by its wide cell, blanking the halves that lost their partner.
    fn repair_wide(&mut self) {
        let w = self.width();
        for c in 0..w {
            let cell = self.cells[c];
            let lost_spacer = cell.wide && (c + 1 >= w || !self.cells[c + 1].spacer);
            let lost_wide = cell.spacer && (c == 0 || !self.cells[c - 1].wide);
            if lost_spacer || lost_wide {
                self.cells[c] = Cell::blank(cell.rend);
            }
        }
    }

    fn resize(&mut self, width: usize) {
        if width < self.width() {
            self.wrap = false;
        }
        self.cells.resize(width, Cell::default());
        self.extent = self.extent.min(width);
        self.repair_wide();
    }
}

/// Mouse reporting mode (DEC private modes 9, 1000–1003; one at a time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MouseReporting {
    /// No reporting.
    #[default]
    None,
    /// 9: X10 compatibility.
    X10,
    /// 1000: press and release.
    Normal,
    /// 1001: highlight tracking.
    Highlight,
    /// 1002: button-event tracking.
    ButtonEvent,
    /// 1003: any-event tracking.
    AnyEvent,
}

impl MouseReporting {
    /// The DEC private mode number, if any.
    pub fn mode(self) -> Option<u16> {
        match self {
            MouseReporting::None => None,
            MouseReporting::X10 => Some(9),
            MouseReporting::Normal => Some(1000),
            MouseReporting::Highlight => Some(1001),
            MouseReporting::ButtonEvent => Some(1002),
            MouseReporting::AnyEvent => Some(1003),
        }
    }
}

/// Mouse report encoding (DEC private modes 1005, 1006, 1015; one at a time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MouseEncoding {
    /// Classic X10 bytes.
    #[default]
    Default,
    /// 1005: UTF-8 coordinates.
    Utf8,
    /// 1006: SGR style.
    Sgr,
    /// 1015: urxvt style.
    Urxvt,
}

impl MouseEncoding {
    /// The DEC private mode number, if any.
    pub fn mode(self) -> Option<u16> {
        match self {
            MouseEncoding::Default => None,
            MouseEncoding::Utf8 => Some(1005),
            MouseEncoding::Sgr => Some(1006),
            MouseEncoding::Urxvt => Some(1015),
        }
    }
}

/// What DECSC saves and DECRC restores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SavedCursor {
    /// Row.
    pub row: usize,
    /// Column.
    pub col: usize,
    /// Current rendition.
    pub rend: Renditions,
    /// Autowrap mode.
    pub autowrap: bool,
    /// Origin mode.
    pub origin_mode: bool,
}

/// Cursor, modes and other drawing state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrawState {
    /// Columns.
    pub width: usize,
    /// Rows.
    pub height: usize,
    /// Cursor row (0-based).
    pub cursor_row: usize,
    /// Cursor column (0-based).
    pub cursor_col: usize,
    /// A character was printed in the last column; the next one wraps first.
    pub pending_wrap: bool,
    /// Rendition for new text and erased cells.
    pub rend: Renditions,
    /// Tab stops, one flag per column.
    pub tabs: Vec<bool>,
    /// Scroll region top row (inclusive).
    pub scroll_top: usize,
    /// Scroll region bottom row (inclusive).
    pub scroll_bottom: usize,
    /// DECOM: addressing relative to the scroll region.
    pub origin_mode: bool,
    /// DECAWM: automatic wrap at the right margin.
    pub autowrap: bool,
    /// IRM: printing inserts.
    pub insert_mode: bool,
    /// DECTCEM: cursor visible.
    pub cursor_visible: bool,
    /// DECSCNM: reverse video.
    pub reverse_video: bool,
    /// DECCKM: application cursor keys.
    pub application_cursor_keys: bool,
    /// DECKPAM/DECKPNM: application keypad.
    pub application_keypad: bool,
    /// Bracketed paste (2004).
    pub bracketed_paste: bool,
    /// Mouse reporting.
    pub mouse_reporting: MouseReporting,
    /// Focus events (1004).
    pub mouse_focus_event: bool,
    /// Alternate scroll (1007).
    pub mouse_alternate_scroll: bool,
    /// Mouse encoding.
    pub mouse_encoding: MouseEncoding,
    /// DECSC state, if any.
    pub saved_cursor: Option<SavedCursor>,
}

impl DrawState {
    fn new(width: usize, height: usize) -> DrawState {
        DrawState {
            width,
            height,
            cursor_row: 0,
            cursor_col: 0,
            pending_wrap: false,
            rend: Renditions::default(),
            tabs: (0..width).map(|c| c % 8 == 0 && c > 0).collect(),
            scroll_top: 0,
            scroll_bottom: height - 1,
            origin_mode: false,
            autowrap: true,
            insert_mode: false,
            cursor_visible: true,
            reverse_video: false,
            application_cursor_keys: false,
            application_keypad: false,
            bracketed_paste: false,
            mouse_reporting: MouseReporting::None,
            mouse_focus_event: false,
            mouse_alternate_scroll: false,
            mouse_encoding: MouseEncoding::Default,
            saved_cursor: None,
        }
    }

    /// The fields SSP equality looks at (spec §12.2).
    fn synced_eq(&self, other: &DrawState) -> bool {
        self.rend == other.rend && self.synced_eq_but_rend(other)
    }

    /// [`DrawState::synced_eq`] but for the current rendition.
    fn synced_eq_but_rend(&self, other: &DrawState) -> bool {
        self.width == other.width
            && self.height == other.height
            && self.cursor_row == other.cursor_row
            && self.cursor_col == other.cursor_col
            && self.cursor_visible == other.cursor_visible
            && self.reverse_video == other.reverse_video
            && self.bracketed_paste == other.bracketed_paste
            && self.mouse_reporting == other.mouse_reporting
            && self.mouse_focus_event == other.mouse_focus_event
            && self.mouse_alternate_scroll == other.mouse_alternate_scroll
            && self.mouse_encoding == other.mouse_encoding
    }
}

/// The primary screen put aside while the alternate screen is shown.
#[derive(Debug, Clone)]
struct SavedScreen {
    rows: Vec<Arc<Row>>,
}

/// A whole terminal screen and its state. Cloning is cheap: rows, title and
/// clipboard are shared until written.
#[derive(Debug, Clone)]
pub struct Framebuffer {
    rows: Vec<Arc<Row>>,
    /// Cursor, modes and drawing state.
    pub ds: DrawState,
    title: Arc<str>,
    icon_name: Arc<str>,
    title_initialized: bool,
    clipboard: Arc<[u8]>,
    bell_count: u64,
    alternate: Option<SavedScreen>,
    links: Arc<LinkTable>,
}

/// Clamps a requested dimension into `1..=max`.
pub fn clamp_dimension(value: i64, max: usize) -> usize {
    value.clamp(1, max as i64) as usize
}

impl Framebuffer {
    /// A blank screen; the size is clamped to `1..=MAX_WIDTH` × `1..=MAX_HEIGHT`.
    pub fn new(width: usize, height: usize) -> Framebuffer {
        let width = width.clamp(1, MAX_WIDTH);
        let height = height.clamp(1, MAX_HEIGHT);
        Framebuffer {
            rows: (0..height)
                .map(|_| Arc::new(Row::new(width, Renditions::default())))
                .collect(),
            ds: DrawState::new(width, height),
            title: Arc::from(""),
            icon_name: Arc::from(""),
            title_initialized: false,
            clipboard: Arc::from(&[][..]),
            bell_count: 0,
            alternate: None,
            links: Arc::default(),
        }
    }

    /// Columns.
    pub fn width(&self) -> usize {
        self.ds.width
    }

    /// Rows.
    pub fn height(&self) -> usize {
        self.ds.height
    }

    /// The rows, top to bottom.
    pub fn rows(&self) -> &[Arc<Row>] {
        &self.rows
    }

    /// One row. Panics if `row` is out of range.
    pub fn row(&self, row: usize) -> &Row {
        &self.rows[row]
    }

    /// One cell. Panics if the position is out of range.
    pub fn cell(&self, row: usize, col: usize) -> &Cell {
        &self.rows[row].cells[col]
    }

    /// Window title (OSC 0/2).
    pub fn title(&self) -> &str {
        &self.title
    }

    /// Icon name (OSC 0/1).
    pub fn icon_name(&self) -> &str {
        &self.icon_name
    }

    /// Whether an OSC set the title or icon name.
    pub fn title_initialized(&self) -> bool {
        self.title_initialized
    }

    /// OSC 52 clipboard payload (base64 text as sent).
    pub fn clipboard(&self) -> &[u8] {
        &self.clipboard
    }

    /// Number of BELs seen.
    pub fn bell_count(&self) -> u64 {
        self.bell_count
    }

    /// Whether the alternate screen is shown.
    pub fn alternate_screen(&self) -> bool {
        self.alternate.is_some()
    }

    /// The hyperlink `link` names in this framebuffer's table.
    pub fn hyperlink(&self, link: LinkId) -> Option<&Hyperlink> {
        self.links.get(link).map(|l| &**l)
    }

    /// The id `link` has in this framebuffer's table, if it is there.
    pub fn link_id(&self, link: &Hyperlink) -> Option<LinkId> {
        self.links.find(link)
    }

    /// Whether this framebuffer and `other` share one hyperlink table (one
    /// is an unmodified-table snapshot of the other), so that equal
    /// [`LinkId`]s name the same link in both.
    pub fn shares_links(&self, other: &Framebuffer) -> bool {
        Arc::ptr_eq(&self.links, &other.links)
    }

    /// How many distinct hyperlinks this framebuffer's table and `other`'s
    /// hold together: a bound on the links a terminal refers to at any
    /// moment while it is taken from one screen to the other.
    pub fn links_with(&self, other: &Framebuffer) -> usize {
        let mine = self.links.slots.iter().flatten();
        if self.shares_links(other) {
            return mine.count();
        }
        let mut all: std::collections::HashSet<&Hyperlink> = mine.map(|l| &**l).collect();
        all.extend(other.links.slots.iter().flatten().map(|l| &**l));
        all.len()
    }

    /// Whether `link` here and `other_link` in `other` are the same
    /// hyperlink (or both none).
    pub fn same_link(&self, link: LinkId, other: &Framebuffer, other_link: LinkId) -> bool {
        if self.shares_links(other) {
            return link == other_link;
        }
        match (self.links.get(link), other.links.get(other_link)) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b) || a == b,
            _ => false,
        }
    }

    /// Whether `cell` of this framebuffer looks like `other_cell` of
    /// `other`: same contents and rendition, hyperlinks compared by what
    /// they name.
    pub fn same_cell(&self, cell: &Cell, other: &Framebuffer, other_cell: &Cell) -> bool {
        let (mut a, mut b) = (*cell, *other_cell);
        let same_link = self.same_link(a.rend.link, other, b.rend.link);
        a.rend.link = LinkId::NONE;
        b.rend.link = LinkId::NONE;
        same_link && a == b
    }

    /// Opens the hyperlink later printing uses (OSC 8): an existing entry
    /// of the table if one is equal, else a new one. When the table is full,
    /// links no cell refers to any more are forgotten first; if it is still
    /// full the link is dropped and [`LinkId::NONE`] returned.
    pub(crate) fn intern_link(&mut self, link: Hyperlink) -> LinkId {
        if let Some(id) = self.links.find(&link) {
            return id;
        }
        if self.links.free_slot().is_none() {
            self.forget_unused_links();
        }
        let Some(slot) = self.links.free_slot() else {
            return LinkId::NONE;
        };
        let table = Arc::make_mut(&mut self.links);
        if slot == table.slots.len() {
            table.slots.push(None);
        }
        table.slots[slot] = Some(Arc::new(link));
        LinkId(slot as u16 + 1)
    }

    /// Empties the table slots no cell, drawing state or saved cursor
    /// refers to.
    fn forget_unused_links(&mut self) {
        let mut used = vec![false; self.links.slots.len() + 1];
        let mut mark = |link: LinkId| {
            if let Some(u) = used.get_mut(usize::from(link.0)) {
                *u = true;
            }
        };
        let saved = self.alternate.iter().flat_map(|s| s.rows.iter());
        for row in self.rows.iter().chain(saved) {
            for cell in &row.cells {
                mark(cell.rend.link);
            }
        }
        mark(self.ds.rend.link);
        if let Some(saved) = &self.ds.saved_cursor {
            mark(saved.rend.link);
        }
        if used[1..].iter().all(|&u| u) {
            return;
        }
        let table = Arc::make_mut(&mut self.links);
        for (slot, entry) in table.slots.iter_mut().enumerate() {
            if !used[slot + 1] {
                *entry = None;
            }
        }
    }

    /// Everything SSP equality looks at is equal except generation ids, the
    /// bell counter (a diff rings the bell once however many times it rang)
    /// and alternate-scroll mode (never transmitted, spec §12.2): what a
    /// replay of the display diff must reproduce.
    /// Hyperlinks are compared by what they name, since each end numbers
    /// them in its own table.
    pub fn same_picture(&self, other: &Framebuffer) -> bool {
        let mut ds = other.ds.clone();
        ds.mouse_alternate_scroll = self.ds.mouse_alternate_scroll;
        ds.rend.link = self.ds.rend.link;
        self.ds.synced_eq(&ds)
            && self.same_link(self.ds.rend.link, other, other.ds.rend.link)
            && self.title == other.title
            && self.clipboard == other.clipboard
            && self.rows.iter().zip(&other.rows).all(|(a, b)| {
                a.wrap == b.wrap
                    && a.cells
                        .iter()
                        .zip(&b.cells)
                        .all(|(x, y)| self.same_cell(x, other, y))
            })
    }

    /// SSP equality (as [`PartialEq`]) as far as stock mosh can tell:
    /// renditions compared by [`Renditions::same_stock`], hyperlinks not at
    /// all. Two screens that differ only in what stock cannot carry are the
    /// same state for a stock peer.
    pub fn same_for_stock(&self, other: &Framebuffer) -> bool {
        self.ds.synced_eq_but_rend(&other.ds)
            && self.ds.rend.same_stock(&other.ds.rend)
            && self.title == other.title
            && self.clipboard == other.clipboard
            && self.bell_count == other.bell_count
            && self.rows.iter().zip(&other.rows).all(|(a, b)| {
                Arc::ptr_eq(a, b)
                    || (a.generation == b.generation
                        && a.wrap == b.wrap
                        && a.cells.iter().zip(&b.cells).all(|(x, y)| x.same_stock(y)))
            })
    }

    /// This screen as a client's replica of it holds it: the state the
    /// display differ never transmits (scroll region, origin, autowrap and
    /// insert modes, saved cursor) at its defaults, as the differ's own
    /// output leaves it.
    pub fn replica(&self) -> Framebuffer {
        let mut fb = self.clone();
        fb.ds.scroll_top = 0;
        fb.ds.scroll_bottom = fb.ds.height - 1;
        fb.ds.origin_mode = false;
        fb.ds.autowrap = true;
        fb.ds.insert_mode = false;
        fb.ds.saved_cursor = None;
        fb.alternate = None;
        fb
    }

    /// This screen as stock mosh can hold it: every rendition (cells,
    /// drawing state, saved cursor) cut to [`Renditions::stock`], and no
    /// hyperlinks. The display differ's output without
    /// [`Display::attributes`](crate::Display::attributes) is the same for a
    /// screen and for this copy of it.
    pub fn to_stock(&self) -> Framebuffer {
        let mut fb = self.clone();
        let strip = |rows: &mut Vec<Arc<Row>>| {
            for row in rows {
                if row.cells.iter().any(|c| c.rend != c.rend.stock()) {
                    for cell in &mut Arc::make_mut(row).cells {
                        cell.rend = cell.rend.stock();
                    }
                }
            }
        };
        strip(&mut fb.rows);
        if let Some(saved) = &mut fb.alternate {
            strip(&mut saved.rows);
        }
        fb.ds.rend = fb.ds.rend.stock();
        if let Some(saved) = &mut fb.ds.saved_cursor {
            saved.rend = saved.rend.stock();
        }
        fb.links = Arc::default();
        fb
    }

    /// Overwrites one cell (e.g. to draw an overlay on a copy of a screen).
    /// Writing a wide cell, or over one half of a wide cell, is the caller's
    /// business: the next cell must be a spacer after a wide cell. Panics if
    /// the position is out of range.
    pub fn set_cell(&mut self, row: usize, col: usize, cell: Cell) {
        let r = self.row_mut(row);
        r.cells[col] = cell;
        r.extent = r.extent.max(col + 1);
        if col + 1 == r.cells.len() {
            r.wrap = false;
        }
    }

    pub(crate) fn row_mut(&mut self, row: usize) -> &mut Row {
        Arc::make_mut(&mut self.rows[row])
    }

    pub(crate) fn ring_bell(&mut self) {
        self.bell_count = self.bell_count.wrapping_add(1);
    }

    /// Sets the window title (bounded to [`MAX_TITLE_CHARS`]), as OSC 2 does.
    pub fn set_title(&mut self, title: &str) {
        self.title = title
            .chars()
            .take(MAX_TITLE_CHARS)
            .collect::<String>()
            .into();
        self.title_initialized = true;
    }

    /// Sets the icon name (bounded to [`MAX_TITLE_CHARS`]), as OSC 1 does.
    pub fn set_icon_name(&mut self, name: &str) {
        self.icon_name = name
            .chars()
            .take(MAX_TITLE_CHARS)
            .collect::<String>()
            .into();
        self.title_initialized = true;
    }

    /// Sets the clipboard, keeping the printable ASCII of `data` (base64
    /// text), bounded to [`MAX_CLIPBOARD_BYTES`].
    pub fn set_clipboard(&mut self, data: &[u8]) {
        self.clipboard = data
            .iter()
            .copied()
            .filter(|b| (0x20..0x7f).contains(b))
            .take(MAX_CLIPBOARD_BYTES)
            .collect::<Vec<u8>>()
            .into();
    }

    /// Changes the size, keeping the top-left content, tab stops and modes;
    /// resets the scroll region and clamps the cursor.
    pub fn resize(&mut self, width: usize, height: usize) {
        let width = width.clamp(1, MAX_WIDTH);
        let height = height.clamp(1, MAX_HEIGHT);
        if width == self.ds.width && height == self.ds.height {
            return;
        }
        let resize_rows = |rows: &mut Vec<Arc<Row>>| {
            rows.truncate(height);
            for row in rows.iter_mut() {
                if row.width() != width {
                    Arc::make_mut(row).resize(width);
                }
            }
            while rows.len() < height {
                rows.push(Arc::new(Row::new(width, Renditions::default())));
            }
            if rows[height - 1].wrap {
                Arc::make_mut(&mut rows[height - 1]).wrap = false;
            }
        };
        resize_rows(&mut self.rows);
        if let Some(saved) = &mut self.alternate {
            resize_rows(&mut saved.rows);
        }
        let old_width = self.ds.tabs.len();
        self.ds.tabs.truncate(width);
        self.ds
            .tabs
            .extend((old_width..width).map(|c| c % 8 == 0 && c > 0));
        self.ds.width = width;
        self.ds.height = height;
        self.ds.scroll_top = 0;
        self.ds.scroll_bottom = height - 1;
        self.ds.cursor_row = self.ds.cursor_row.min(height - 1);
        self.ds.cursor_col = self.ds.cursor_col.min(width - 1);
        self.ds.pending_wrap = false;
        if let Some(saved) = &mut self.ds.saved_cursor {
            saved.row = saved.row.min(height - 1);
            saved.col = saved.col.min(width - 1);
        }
    }

    /// Full reset (RIS): a blank screen of the same size; the bell counter is
    /// kept.
    pub fn reset(&mut self) {
        let bells = self.bell_count;
        *self = Framebuffer::new(self.ds.width, self.ds.height);
        self.bell_count = bells;
    }

    /// Scrolls rows `top..=bottom` up by `n`, blank rows entering at the
    /// bottom in `rend`.
    pub(crate) fn scroll_up_region(&mut self, top: usize, bottom: usize, n: usize) {
        let n = n.min(bottom + 1 - top);
        let width = self.ds.width;
        let rend = self.ds.rend.erased();
        self.rows[top..=bottom].rotate_left(n);
        for row in &mut self.rows[bottom + 1 - n..=bottom] {
            match Arc::get_mut(row) {
                Some(r) => r.reset(rend),
                None => *row = Arc::new(Row::new(width, rend)),
            }
        }
    }

    /// Scrolls rows `top..=bottom` down by `n`, blank rows entering at the
    /// top.
    pub(crate) fn scroll_down_region(&mut self, top: usize, bottom: usize, n: usize) {
        let n = n.min(bottom + 1 - top);
        let width = self.ds.width;
        let rend = self.ds.rend.erased();
        self.rows[top..=bottom].rotate_right(n);
        for row in &mut self.rows[top..top + n] {
            *row = Arc::new(Row::new(width, rend));
        }
        let last = self.ds.height - 1;
        if bottom == last && self.rows[last].wrap {
            self.row_mut(last).wrap = false;
        }
    }

    /// Blanks cells of one row in the current background.
    pub(crate) fn erase_cells(&mut self, row: usize, start: usize, end: usize) {
        let rend = self.ds.rend.erased();
        self.row_mut(row).erase(start, end, rend);
    }

    /// Replaces a whole row by a fresh blank one (new generation).
    pub(crate) fn clear_row(&mut self, row: usize) {
        self.rows[row] = Arc::new(Row::new(self.ds.width, self.ds.rend.erased()));
    }

    /// Inserts `n` blank cells at `col`, shifting the rest right.
    pub(crate) fn insert_cells(&mut self, row: usize, col: usize, n: usize) {
        let rend = self.ds.rend.erased();
        let r = self.row_mut(row);
        let w = r.width();
        let n = n.min(w - col);
        r.cells[col..].rotate_right(n);
        for cell in &mut r.cells[col..col + n] {
            *cell = Cell::blank(rend);
        }
        r.extent = w;
        r.wrap = false;
        r.repair_wide();
    }

    /// Deletes `n` cells at `col`, blank cells entering at the right.
    pub(crate) fn delete_cells(&mut self, row: usize, col: usize, n: usize) {
        let rend = self.ds.rend.erased();
        let r = self.row_mut(row);
        let w = r.width();
        let n = n.min(w - col);
        r.cells[col..].rotate_left(n);
        for cell in &mut r.cells[w - n..] {
            *cell = Cell::blank(rend);
        }
        r.extent = r.extent.max(blank_extent(w, rend));
        r.wrap = false;
        r.repair_wide();
    }

    /// Writes a character of width 1 or 2 at (row, col), which must fit.
    pub(crate) fn put_char(&mut self, row: usize, col: usize, c: char, wide: bool) {
        let rend = self.ds.rend;
        self.row_mut(row).put(col, c, wide, rend);
    }

    /// Writes narrow printable ASCII from `col` on; it must fit in the row.
    pub(crate) fn put_ascii(&mut self, row: usize, col: usize, text: &[u8]) {
        let rend = self.ds.rend;
        self.row_mut(row).put_ascii(col, text, rend);
    }

    /// Adds a combining character to a non-blank cell.
    pub(crate) fn combine(&mut self, row: usize, col: usize, c: char) {
        let r = self.row_mut(row);
        r.cells[col].push_char(c);
        r.extent = r.extent.max(col + 1);
    }

    /// Starts a fallback cell (a combining mark with nothing to combine
    /// with) at (row, col): U+00A0 followed by the mark.
    pub(crate) fn put_fallback(&mut self, row: usize, col: usize, c: char) {
        self.put_char(row, col, '\u{a0}', false);
        self.row_mut(row).cells[col].push_char(c);
    }

    /// Fills the screen with `E` (DECALN).
    pub(crate) fn fill_e(&mut self) {
        for row in 0..self.ds.height {
            let r = self.row_mut(row);
            r.extent = r.cells.len();
            for cell in &mut r.cells {
                *cell = Cell::default();
                cell.set_char('E');
            }
            r.wrap = false;
        }
    }

    /// Switches to the alternate screen (blank), parking the primary one.
    pub(crate) fn enter_alternate(&mut self) {
        if self.alternate.is_some() {
            return;
        }
        let width = self.ds.width;
        let blank: Vec<Arc<Row>> = (0..self.ds.height)
            .map(|_| Arc::new(Row::new(width, Renditions::default())))
            .collect();
        let primary = std::mem::replace(&mut self.rows, blank);
        self.alternate = Some(SavedScreen { rows: primary });
    }

    /// Returns to the primary screen.
    pub(crate) fn leave_alternate(&mut self) {
        if let Some(saved) = self.alternate.take() {
            self.rows = saved.rows;
        }
    }
}

impl PartialEq for Framebuffer {
    /// SSP equality (spec §12.2): rows (cells and generation), title,
    /// clipboard, bell counter and the synchronised drawing state; and the
    /// hyperlink table the cells refer to.
    fn eq(&self, other: &Framebuffer) -> bool {
        self.ds.synced_eq(&other.ds)
            && (self.shares_links(other) || self.links == other.links)
            && self.title == other.title
            && self.clipboard == other.clipboard
            && self.bell_count == other.bell_count
            && self
                .rows
                .iter()
                .zip(&other.rows)
                .all(|(a, b)| Arc::ptr_eq(a, b) || **a == **b)
    }
}
