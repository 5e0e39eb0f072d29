//! The speed benchmark's work, in the four kinds CoreMark measures: linked-list
//! processing, matrix arithmetic, a state machine, and CRC over all of their results.
//! Written for this project (it is not CoreMark and its figures are not CoreMark scores).
//!
//! The same source runs natively in the firmware and, through `guests/speed`, as Wasm
//! under Pulley and under wasmi, so all of them do exactly the same work. Every input is
//! derived from a seed the caller passes at run time, so no compiler can fold the work
//! away, and [`run`] returns a CRC of every intermediate result: [`EXPECTED`] pins it,
//! which is the benchmark's self-check.
#![no_std]

/// Nodes in the linked list.
const LIST_LEN: usize = 48;
/// The end of a list.
const NIL: u8 = u8::MAX;
/// Rows and columns of the matrices.
const N: usize = 10;
/// Bytes of text the state machine scans.
const TEXT_LEN: usize = 160;

/// The seed and iteration count of the self-check, and the CRC they must give.
pub const SELF_CHECK_SEED: u32 = 0x5EED_0001;
pub const SELF_CHECK_ITERATIONS: u32 = 10;
pub const EXPECTED: u32 = 0x7985;

/// All the memory the kernels use, so a guest can keep it in static data and firmware on
/// its stack: no allocator is involved.
pub struct Workspace {
    next: [u8; LIST_LEN],
    value: [i16; LIST_LEN],
    a: [[i16; N]; N],
    b: [[i16; N]; N],
    c: [[i32; N]; N],
    text: [u8; TEXT_LEN],
}

impl Workspace {
    pub const fn new() -> Workspace {
        Workspace {
            next: [0; LIST_LEN],
            value: [0; LIST_LEN],
            a: [[0; N]; N],
            b: [[0; N]; N],
            c: [[0; N]; N],
            text: [0; TEXT_LEN],
        }
    }
}

impl Default for Workspace {
    fn default() -> Self {
        Workspace::new()
    }
}

/// Runs every kernel `iterations` times, each time on new inputs derived from `seed`,
/// and returns the CRC-16 of all their results.
pub fn run(workspace: &mut Workspace, seed: u32, iterations: u32) -> u32 {
    let mut crc = Crc(0xFFFF);
    for iteration in 0..iterations {
        // Never zero: xorshift would stay at zero.
        let mut rng = Rng((seed ^ iteration.wrapping_mul(0x9E37_79B9)) | 1);
        list(workspace, &mut rng, &mut crc);
        matrix(workspace, &mut rng, &mut crc);
        state_machine(workspace, &mut rng, &mut crc);
    }
    u32::from(crc.0)
}

/// Marsaglia's xorshift32: cheap, and the same on every target.
struct Rng(u32);

impl Rng {
    fn next(&mut self) -> u32 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.0 = x;
        x
    }
}

/// CRC-16/CCITT, bit by bit as a small device without a table would compute it.
struct Crc(u16);

impl Crc {
    fn byte(&mut self, byte: u8) {
        self.0 ^= u16::from(byte) << 8;
        for _ in 0..8 {
            self.0 = if self.0 & 0x8000 != 0 { (self.0 << 1) ^ 0x1021 } else { self.0 << 1 };
        }
    }

    fn word(&mut self, word: u32) {
        for byte in word.to_le_bytes() {
            self.byte(byte);
        }
    }
}

/// Builds a list of random values, sorts it by value with a merge sort over the links,
/// checks the order, reverses it, and searches it.
fn list(w: &mut Workspace, rng: &mut Rng, crc: &mut Crc) {
    for i in 0..LIST_LEN {
        w.value[i] = rng.next() as i16;
        w.next[i] = if i + 1 < LIST_LEN { (i + 1) as u8 } else { NIL };
    }
    let head = sort_list(&mut w.next, &w.value, 0);

    let (mut node, mut previous, mut out_of_order) = (head, i16::MIN, 0u32);
    while node != NIL {
        let value = w.value[usize::from(node)];
        out_of_order += u32::from(value < previous);
        crc.word(value as u32);
        previous = value;
        node = w.next[usize::from(node)];
    }
    crc.word(out_of_order);

    // Reverse the links.
    let (mut node, mut reversed) = (head, NIL);
    while node != NIL {
        let following = w.next[usize::from(node)];
        w.next[usize::from(node)] = reversed;
        reversed = node;
        node = following;
    }

    // Search for a few values: where each first occurs (or how far the search went).
    for _ in 0..4 {
        let wanted = (rng.next() & 0x7) as i16;
        let (mut node, mut position) = (reversed, 0u32);
        while node != NIL && w.value[usize::from(node)] & 0x7 != wanted {
            node = w.next[usize::from(node)];
            position += 1;
        }
        crc.word(position);
    }
}

/// Sorts the list starting at `head` by value, stably, by merging ever longer sorted
/// runs; returns the new head. No recursion and no extra memory, as on a small device.
fn sort_list(next: &mut [u8; LIST_LEN], value: &[i16; LIST_LEN], mut head: u8) -> u8 {
    let mut width = 1;
    loop {
        let (mut left, mut tail) = (head, NIL);
        head = NIL;
        let mut merges = 0;
        while left != NIL {
            merges += 1;
            // The right run starts `width` nodes after the left one.
            let (mut right, mut left_len) = (left, 0);
            while left_len < width && right != NIL {
                left_len += 1;
                right = next[usize::from(right)];
            }
            let mut right_len = width;
            while left_len > 0 || (right_len > 0 && right != NIL) {
                let take_left = left_len > 0
                    && (right_len == 0 || right == NIL || value[usize::from(left)] <= value[usize::from(right)]);
                let node = if take_left {
                    let node = left;
                    left = next[usize::from(left)];
                    left_len -= 1;
                    node
                } else {
                    let node = right;
                    right = next[usize::from(right)];
                    right_len -= 1;
                    node
                };
                if tail == NIL {
                    head = node;
                } else {
                    next[usize::from(tail)] = node;
                }
                tail = node;
            }
            left = right;
        }
        next[usize::from(tail)] = NIL;
        if merges <= 1 {
            return head;
        }
        width *= 2;
    }
}

/// Multiplies two random matrices, adds a constant, multiplies by a vector, and sums
/// bit fields of the products.
fn matrix(w: &mut Workspace, rng: &mut Rng, crc: &mut Crc) {
    for i in 0..N {
        for j in 0..N {
            let bits = rng.next();
            w.a[i][j] = (bits & 0xFF) as i16 - 128;
            w.b[i][j] = ((bits >> 8) & 0xFF) as i16 - 128;
        }
    }
    for i in 0..N {
        for j in 0..N {
            let mut sum = 0i32;
            for k in 0..N {
                sum += i32::from(w.a[i][k]) * i32::from(w.b[k][j]);
            }
            w.c[i][j] = sum;
        }
    }
    let constant = (rng.next() & 0x3F) as i16;
    for row in w.a.iter_mut() {
        for cell in row.iter_mut() {
            *cell = cell.wrapping_add(constant);
        }
    }
    for i in 0..N {
        let mut product = 0i32;
        for j in 0..N {
            product += i32::from(w.a[i][j]) * i32::from(w.b[0][j]);
        }
        crc.word(product as u32);
    }
    let mut fields = 0u32;
    for row in &w.c {
        for &cell in row {
            fields = fields.wrapping_add(((cell >> 2) & 0xF) as u32 * ((cell >> 6) & 0x7F) as u32);
        }
    }
    crc.word(fields);
}

/// Writes random numbers in four forms (integer, decimal, exponent, malformed) as
/// comma-separated text, then classifies each with a state machine and counts the kinds
/// and the transitions.
fn state_machine(w: &mut Workspace, rng: &mut Rng, crc: &mut Crc) {
    let mut len = 0;
    while len + 10 < TEXT_LEN {
        let bits = rng.next();
        let mut push = |byte: u8| {
            w.text[len] = byte;
            len += 1;
        };
        if bits & 0x10 != 0 {
            push(b'-');
        }
        push(b'0' + (bits >> 8) as u8 % 10);
        push(b'0' + (bits >> 12) as u8 % 10);
        match bits & 0x3 {
            0 => {}
            1 => {
                push(b'.');
                push(b'0' + (bits >> 16) as u8 % 10);
            }
            2 => {
                push(b'e');
                push(b'0' + (bits >> 20) as u8 % 10);
            }
            _ => push(b'x'),
        }
        push(b',');
    }

    #[derive(Clone, Copy, PartialEq)]
    enum State {
        Start,
        Sign,
        Integer,
        Point,
        Decimal,
        Exponent,
        ExponentDigits,
        Invalid,
    }
    // Numbers ended in each state, and state changes.
    let mut ended = [0u32; 8];
    let mut transitions = 0u32;
    let mut state = State::Start;
    for &byte in &w.text[..len] {
        let next = match (state, byte) {
            (_, b',') => {
                ended[state as usize] += 1;
                State::Start
            }
            (State::Start, b'-' | b'+') => State::Sign,
            (State::Start | State::Sign | State::Integer, b'0'..=b'9') => State::Integer,
            (State::Integer, b'.') => State::Point,
            (State::Point | State::Decimal, b'0'..=b'9') => State::Decimal,
            (State::Integer | State::Decimal, b'e' | b'E') => State::Exponent,
            (State::Exponent | State::ExponentDigits, b'0'..=b'9') => State::ExponentDigits,
            _ => State::Invalid,
        };
        transitions += u32::from(next != state);
        state = next;
    }
    for count in ended {
        crc.word(count);
    }
    crc.word(transitions);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_self_check_holds() {
        assert_eq!(run(&mut Workspace::new(), SELF_CHECK_SEED, SELF_CHECK_ITERATIONS), EXPECTED);
    }

    #[test]
    fn the_list_comes_out_sorted() {
        let mut w = Workspace::new();
        let mut rng = Rng(7);
        for i in 0..LIST_LEN {
            w.value[i] = rng.next() as i16;
            w.next[i] = if i + 1 < LIST_LEN { (i + 1) as u8 } else { NIL };
        }
        let mut node = sort_list(&mut w.next, &w.value, 0);
        let mut seen = 0;
        let mut previous = i16::MIN;
        while node != NIL {
            assert!(w.value[usize::from(node)] >= previous);
            previous = w.value[usize::from(node)];
            node = w.next[usize::from(node)];
            seen += 1;
        }
        assert_eq!(seen, LIST_LEN);
    }

    #[test]
    fn other_seeds_give_other_results() {
        let mut w = Workspace::new();
        assert_ne!(run(&mut w, 1, 3), run(&mut w, 2, 3));
        assert_ne!(run(&mut w, 1, 3), run(&mut w, 1, 4));
    }
}
