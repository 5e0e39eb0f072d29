//! Guests sharing the chip under embassy: a ticker task wakes every millisecond while
//! guests compute, because each async guest call gives the executor back control after
//! every yield interval of fuel (build.rs sets it). It prints the ticker's worst lateness
//! beside the longest slice a guest ran without yielding, first with one guest
//! computing, then with two guests in two tasks at once, and checks that what each
//! yielding call computes equals the blocking call's result. The add guest's `extra`
//! import awaits an embassy `Timer` and a `Channel` that another task feeds.
//!
//! Cortex-M4: `cargo run --release --features embassy --example embassy`; RISC-V: add
//! `--target riscv32imac-unknown-none-elf`. QEMU runs it with `-icount shift=4`: one
//! instruction every 16 ns, so embassy's time is that of a 62.5 MHz core that runs an
//! instruction a cycle.
#![no_std]
#![no_main]

use core::future::Future;
use core::pin::Pin;
use core::sync::atomic::{AtomicU32, Ordering};
use core::task::{Context, Poll};

use demo_firmware::{exit, guests, heap, say};
use embassy_executor::Spawner;
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_sync::channel::Channel;
use embassy_sync::signal::Signal;
use embassy_time::{Duration, Instant, Ticker, Timer};
use wasm_embed::{Error, GuestModule};

const TICK: Duration = Duration::from_millis(1);
/// The input the compute guest checksums: 1 KiB, its whole buffer.
const INPUT: [u8; 1024] = {
    let mut bytes = [0; 1024];
    let mut i = 0;
    while i < bytes.len() {
        bytes[i] = (i * 7 + 3) as u8;
        i += 1;
    }
    bytes
};
/// Checksums per computation: each is about 100,000 units of fuel.
const ROUNDS: u32 = 4;

/// The ticker's worst lateness, in microseconds, of the ticks due since [`MEASURING_SINCE`].
static WORST_LATENESS: AtomicU32 = AtomicU32::new(0);
/// The ticks the ticker counted since [`MEASURING_SINCE`]: a ticker that never ran would
/// report no lateness at all.
static TICKS: AtomicU32 = AtomicU32::new(0);
/// When the phase being measured began (embassy ticks, µs); 0 while none is. Ticks due
/// before it (while the set-up ran blocking code) are not counted.
static MEASURING_SINCE: AtomicU32 = AtomicU32::new(0);
/// The longest single poll of a guest call since the last reset: the longest time the
/// guest kept the core without yielding, in microseconds.
static LONGEST_SLICE: AtomicU32 = AtomicU32::new(0);
/// What the sensor task sends the add guest's `extra` import.
static READINGS: Channel<CriticalSectionRawMutex, u32, 2> = Channel::new();

type Done<T> = Signal<CriticalSectionRawMutex, T>;
static COMPUTED: Done<Result<(u32, u32), Error>> = Signal::new();
static SPUN: Done<(Result<u32, Error>, u32)> = Signal::new();

#[embassy_executor::task]
async fn ticker() {
    let mut ticker = Ticker::every(TICK);
    let mut due = Instant::now() + TICK;
    loop {
        ticker.next().await;
        let since = MEASURING_SINCE.load(Ordering::Relaxed);
        if since != 0 && due.as_micros() >= u64::from(since) {
            let late = Instant::now().saturating_duration_since(due).as_micros();
            WORST_LATENESS.fetch_max(late as u32, Ordering::Relaxed);
            TICKS.fetch_add(1, Ordering::Relaxed);
        }
        due += TICK;
    }
}

/// A sensor that has a reading 3 ms after it is asked.
#[embassy_executor::task]
async fn sensor() {
    Timer::after_millis(3).await;
    READINGS.send(42).await;
}

#[embassy_executor::task]
async fn compute(mut compute: guests::compute::Compute<()>) {
    COMPUTED.signal(checksum_async(&mut compute).await);
}

#[embassy_executor::task]
async fn spin(mut spin: guests::spin::Spin<()>) {
    SPUN.signal(Slices::new(spin.spin_async()).await);
}

/// The add guest's host: `extra` waits a millisecond, then for the sensor's reading, and
/// keeps how long each wait took.
#[derive(Default, Clone, Copy)]
struct Board {
    timer_us: u64,
    channel_us: u64,
}

impl guests::add::AsyncHost for Board {
    async fn extra(&mut self) -> Result<u32, Error> {
        let start = Instant::now();
        Timer::after_millis(1).await;
        let timer_done = Instant::now();
        let reading = READINGS.receive().await;
        self.timer_us = (timer_done - start).as_micros();
        self.channel_us = timer_done.elapsed().as_micros();
        Ok(reading)
    }
}

/// The checksum of [`INPUT`], [`ROUNDS`] times, through an async call: the last result
/// and the polls the calls took.
async fn checksum_async(compute: &mut guests::compute::Compute<()>) -> Result<(u32, u32), Error> {
    // Its first async call also makes the fiber: a slice like any other.
    let buffer = Slices::new(compute.input_buffer_async()).await.0?;
    compute.memory().write(buffer, &INPUT)?;
    let (mut crc, mut polls) = (0, 0);
    for _ in 0..ROUNDS {
        let (result, slices) = Slices::new(compute.crc32_async(INPUT.len() as u32)).await;
        crc = result?;
        polls += slices;
    }
    Ok((crc, polls))
}

/// The same through blocking calls, for the reference result.
fn checksum_blocking(module: &GuestModule) -> Result<u32, Error> {
    let mut compute = guests::compute::Compute::new(module, ())?;
    let buffer = compute.input_buffer()?;
    compute.memory().write(buffer, &INPUT)?;
    let mut crc = 0;
    for _ in 0..ROUNDS {
        crc = compute.crc32(INPUT.len() as u32)?;
    }
    Ok(crc)
}

/// A guest call's future, timed poll by poll: the longest poll is the longest slice the
/// guest ran without giving control back.
struct Slices<F> {
    future: F,
    polls: u32,
}

impl<F> Slices<F> {
    fn new(future: F) -> Self {
        Slices { future, polls: 0 }
    }
}

impl<F: Future> Future for Slices<F> {
    type Output = (F::Output, u32);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: `future` is never moved out of the pinned wrapper.
        let this = unsafe { self.get_unchecked_mut() };
        let future = unsafe { Pin::new_unchecked(&mut this.future) };
        let start = Instant::now();
        let poll = future.poll(cx);
        LONGEST_SLICE.fetch_max(start.elapsed().as_micros() as u32, Ordering::Relaxed);
        this.polls += 1;
        poll.map(|output| (output, this.polls))
    }
}

/// Starts measuring a phase: the worst lateness and the longest slice from now on.
fn measure() {
    WORST_LATENESS.store(0, Ordering::Relaxed);
    TICKS.store(0, Ordering::Relaxed);
    LONGEST_SLICE.store(0, Ordering::Relaxed);
    MEASURING_SINCE.store(Instant::now().as_micros().max(1) as u32, Ordering::Relaxed);
}

/// Prints the phase's lateness line (`./x size` tabulates it).
fn report(phase: &str) {
    let late = WORST_LATENESS.load(Ordering::Relaxed);
    let slice = LONGEST_SLICE.load(Ordering::Relaxed);
    let ticks = TICKS.load(Ordering::Relaxed);
    say!("{phase}: worst tick lateness {late} us, longest slice {slice} us, over {ticks} ticks");
}

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    demo_firmware::init();
    demo_firmware::time::init();
    match run(spawner).await {
        Ok(true) => exit(true),
        Ok(false) => exit(false),
        Err(error) => {
            say!("error: {error}");
            exit(false)
        }
    }
}

async fn run(spawner: Spawner) -> Result<bool, Error> {
    let settings = &guests::SETTINGS;
    let engine = wasm_embed::engine(settings)?;
    say!(
        "yield interval: {} units of fuel, calls bounded at {}",
        settings.fuel_yield_interval.unwrap_or(0),
        settings.fuel.unwrap_or(0)
    );
    let compute_module = guests::compute::GUEST.load(&engine)?;
    let blocking = checksum_blocking(&compute_module)?;
    say!("blocking: crc32 = {blocking:#010x}");
    // The ticker runs before any guest that is ready at the same time (embassy's
    // `scheduler-priority`): a guest that yields wakes itself at once, and embassy's
    // run queue would otherwise poll it first, making a tick wait two slices.
    let ticker = ticker().unwrap();
    ticker.metadata().set_priority(1);
    spawner.spawn(ticker);
    let mut ok = true;

    // One guest computing, the ticker beside it.
    let mut one = guests::compute::Compute::new_async(&compute_module, ()).await?;
    measure();
    let (crc, polls) = checksum_async(&mut one).await?;
    ok &= crc == blocking;
    say!("one guest: crc32 = {crc:#010x} in {polls} polls ({})", same(crc == blocking));
    report("one guest");

    // Two guests at once in two tasks, and the add guest awaiting a timer and a channel.
    drop(one);
    let spin_module = guests::spin::GUEST.load(&engine)?;
    let add_module = guests::add::GUEST.load(&engine)?;
    let two = guests::compute::Compute::new_async(&compute_module, ()).await?;
    let spinning = guests::spin::Spin::new_async(&spin_module, ()).await?;
    let mut add = guests::add::Add::new_async(&add_module, Board::default()).await?;
    measure();
    spawner.spawn(compute(two).unwrap());
    spawner.spawn(spin(spinning).unwrap());
    spawner.spawn(sensor().unwrap());
    let (sum, polls) = Slices::new(add.add_with_extra_async(1, 2)).await;
    let sum = sum?;
    let Board { timer_us, channel_us } = *add.host();
    say!(
        "add_with_extra(1, 2) = {sum} in {polls} polls, its import waited {timer_us} us for the timer and \
         {channel_us} us for the channel"
    );
    ok &= sum == 45;
    let (crc, polls) = COMPUTED.wait().await?;
    ok &= crc == blocking;
    say!("two guests: crc32 = {crc:#010x} in {polls} polls ({})", same(crc == blocking));
    match SPUN.wait().await {
        (Err(error), polls) => say!("two guests: spin in {polls} polls: {error}"),
        (Ok(value), _) => {
            say!("two guests: spin returned {value}, and it never should");
            ok = false;
        }
    }
    report("two guests");
    say!("peak heap: {} bytes", heap::peak());
    Ok(ok)
}

fn same(equal: bool) -> &'static str {
    if equal { "equal to the blocking call's" } else { "DIFFERS from the blocking call's" }
}
