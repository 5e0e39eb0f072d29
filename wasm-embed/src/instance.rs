//! A guest instantiated in a store of its own: what the typed handles that
//! `wasm-embed-build` generates are made of. Dropping one returns all of the guest's
//! memory.

use wasmtime::{Caller, Extern, Instance, ResourceLimiter, Store, TypedFunc, WasmParams, WasmResults};

use crate::{Error, Fault, Guest, GuestMemory, GuestModule};

/// What a guest's store holds: the host that serves its imports, and what it needs to
/// explain a refused `memory.grow`.
#[doc(hidden)]
pub struct Context<H> {
    guest: &'static str,
    host: H,
    memory: FixedMemory,
}

impl<H> Context<H> {
    pub(crate) fn new(guest: &'static str, host: H) -> Context<H> {
        Context {
            guest,
            host,
            memory: FixedMemory::default(),
        }
    }

    /// Readies the store for a call: its fuel refilled, no refused growth noted yet.
    pub(crate) fn begin_call(store: &mut Store<Context<H>>, fuel: Option<u64>) -> Result<(), Error> {
        if let Some(fuel) = fuel {
            store.set_fuel(fuel).map_err(Error::Engine)?;
        }
        store.data_mut().memory.refused = None;
        Ok(())
    }

    /// A store for the guest, its `memory.grow` noted.
    pub(crate) fn store(engine: &wasmtime::Engine, guest: &'static str, host: H) -> Store<Context<H>> {
        let mut store = Store::new(engine, Context::new(guest, host));
        store.limiter(|context| &mut context.memory);
        store
    }

    /// The host that serves the guest's imports.
    pub fn host(&mut self) -> &mut H {
        &mut self.host
    }

    #[cfg(feature = "component-model")]
    pub(crate) fn host_ref(&self) -> &H {
        &self.host
    }
}

/// A guest's linear memory never grows: Wasmtime is configured to reserve nothing ahead
/// and never move a memory, so `memory.grow` returns -1 as the spec allows. This notes
/// the refused request, so that when the guest then traps (a Rust guest panics when its
/// allocator gets no memory) the error says why.
#[derive(Default)]
struct FixedMemory {
    /// The last growth asked for: (current bytes, requested bytes).
    asked: Option<(usize, usize)>,
    /// A growth that failed since the call began.
    refused: Option<(usize, usize)>,
}

impl ResourceLimiter for FixedMemory {
    fn memory_growing(&mut self, current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        self.asked = Some((current, desired));
        Ok(true)
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        self.refused = self.asked;
        Ok(())
    }

    fn table_growing(&mut self, _current: usize, _desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(true)
    }
}

/// An export of a guest, looked up once with its Rust signature checked.
#[doc(hidden)]
pub struct GuestFunc<Params, Results> {
    name: &'static str,
    func: TypedFunc<Params, Results>,
}

/// A guest instantiated with a host `H`, in a store of its own.
#[doc(hidden)]
pub struct GuestInstance<H: 'static> {
    // Dropped in this order: the store, which holds the module's code in Wasmtime's
    // registry, before the module, whose last drop lets the guest be loaded again.
    store: Store<Context<H>>,
    instance: Instance,
    module: GuestModule,
    fuel_per_call: Option<u64>,
    /// Made by `new_async`: its imports may await, so only async calls can run it.
    #[cfg(feature = "async")]
    asynchronous: bool,
}

impl<H: 'static> GuestInstance<H> {
    /// Instantiates `guest` from `module`, which must have been loaded from it.
    /// `imports` makes the guest's imports in the store, in the order the guest declares
    /// them.
    pub fn new<I: AsRef<[Extern]>>(
        guest: &'static Guest,
        module: &GuestModule,
        host: H,
        imports: impl FnOnce(&mut Store<Context<H>>) -> I,
    ) -> Result<GuestInstance<H>, Error> {
        if !core::ptr::eq(module.guest(), guest) {
            return Err(Error::OtherGuest {
                guest: guest.name(),
                module: module.guest().name(),
            });
        }
        let _setting_up = crate::guest::SettingUp::new(guest);
        let mut store = Context::store(module.module().engine(), guest.name(), host);
        // Instantiation runs the guest's start function, if it has one: bound it too.
        let fuel_per_call = guest.settings().fuel;
        Context::begin_call(&mut store, fuel_per_call)?;
        let imports = imports(&mut store);
        let instance = Instance::new(&mut store, module.module(), imports.as_ref()).map_err(|cause| Error::Instantiate {
            guest: guest.name(),
            cause,
        })?;
        Ok(GuestInstance {
            store,
            instance,
            module: module.clone(),
            fuel_per_call,
            #[cfg(feature = "async")]
            asynchronous: false,
        })
    }

    fn guest(&self) -> &'static str {
        self.module.guest().name()
    }

    /// Looks up an exported function with the given Rust signature.
    pub fn func<Params: WasmParams, Results: WasmResults>(
        &mut self,
        name: &'static str,
    ) -> Result<GuestFunc<Params, Results>, Error> {
        let func = self.instance.get_typed_func(&mut self.store, name).map_err(|cause| Error::Export {
            guest: self.guest(),
            name,
            cause,
        })?;
        Ok(GuestFunc { name, func })
    }

    /// Calls an export, refuelled first when fuel is on, so each call is bounded on its
    /// own. A trap or a failing host function comes back as [`Error::Call`]; the store
    /// stays usable.
    pub fn call<Params: WasmParams, Results: WasmResults>(
        &mut self,
        func: &GuestFunc<Params, Results>,
        params: Params,
    ) -> Result<Results, Error> {
        #[cfg(feature = "async")]
        if self.asynchronous {
            return Err(Error::NeedsAwait {
                guest: self.guest(),
                function: func.name,
            });
        }
        Context::begin_call(&mut self.store, self.fuel_per_call)?;
        let guest = self.guest();
        func.func
            .call(&mut self.store, params)
            .map_err(|cause| failed(guest, func.name, self.store.data(), cause))
    }

    /// Changes the fuel each later call may burn (`None`: unbounded). Only a build with
    /// fuel on (`Builder::fuel` in build.rs) compiles the checks; without them this
    /// returns [`Error::FuelOff`].
    pub fn set_fuel_per_call(&mut self, fuel: Option<u64>) -> Result<(), Error> {
        set_fuel_per_call(self.guest(), &mut self.fuel_per_call, fuel)
    }

    /// The host that serves the guest's imports.
    pub fn host(&self) -> &H {
        &self.store.data().host
    }

    /// The host that serves the guest's imports.
    pub fn host_mut(&mut self) -> &mut H {
        &mut self.store.data_mut().host
    }

    /// The guest's linear memory (empty if it exports none).
    pub fn memory(&mut self) -> GuestMemory<'_> {
        let guest = self.guest();
        let bytes = match self.instance.get_memory(&mut self.store, "memory") {
            Some(memory) => memory.data_mut(&mut self.store),
            None => &mut [],
        };
        GuestMemory::new(guest, bytes)
    }
}

/// Sets the fuel each later call of `guest` may burn, `current` being what it is now:
/// [`Error::FuelOff`] if the build compiled no fuel checks (`current` is `None`).
#[cfg(feature = "async")]
impl<H: Send + 'static> GuestInstance<H> {
    /// Instantiates the guest for async calls: its imports may be `Func::wrap_async`
    /// futures, and with a yield interval in its settings its calls give the executor
    /// control back every that many units of fuel.
    pub async fn new_async<I: AsRef<[Extern]>>(
        guest: &'static Guest,
        module: &GuestModule,
        host: H,
        imports: impl FnOnce(&mut Store<Context<H>>) -> I,
    ) -> Result<GuestInstance<H>, Error> {
        if !core::ptr::eq(module.guest(), guest) {
            return Err(Error::OtherGuest {
                guest: guest.name(),
                module: module.guest().name(),
            });
        }
        let _setting_up = crate::guest::SettingUp::new(guest);
        let mut store = Context::store(module.module().engine(), guest.name(), host);
        let fuel_per_call = guest.settings().fuel;
        if let Some(interval) = guest.settings().fuel_yield_interval {
            store.fuel_async_yield_interval(Some(interval)).map_err(Error::Engine)?;
        }
        Context::begin_call(&mut store, fuel_per_call)?;
        let imports = imports(&mut store);
        let instantiate = Instance::new_async(&mut store, module.module(), imports.as_ref());
        let instance = crate::fiber::FiberCall::new(instantiate)
            .await
            .map_err(|cause| Error::Instantiate {
                guest: guest.name(),
                cause,
            })?;
        Ok(GuestInstance {
            store,
            instance,
            module: module.clone(),
            fuel_per_call,
            asynchronous: true,
        })
    }

    /// Calls the export as a future: it runs on a fiber of its own, and returns Pending
    /// whenever an import awaits or the guest has burnt another yield interval of fuel.
    pub async fn call_async<Params: WasmParams + Sync, Results: WasmResults + Sync>(
        &mut self,
        func: &GuestFunc<Params, Results>,
        params: Params,
    ) -> Result<Results, Error> {
        if !self.asynchronous {
            return Err(Error::NotAsync {
                guest: self.guest(),
                function: func.name,
            });
        }
        if self.module.guest().settings().fuel_yield_interval.is_some() {
            YieldOnce(false).await;
        }
        Context::begin_call(&mut self.store, self.fuel_per_call)?;
        let guest = self.guest();
        let call = func.func.call_async(&mut self.store, params);
        let result = crate::fiber::FiberCall::new(call).await;
        result.map_err(|cause| failed(guest, func.name, self.store.data(), cause))
    }
}

/// Pending once, then ready. An async call of a guest that yields starts with it, so that
/// the end of one call and the first slice of the next never run in the same poll: no
/// poll runs more than one yield interval of guest code.
#[cfg(feature = "async")]
pub(crate) struct YieldOnce(pub(crate) bool);

#[cfg(feature = "async")]
impl core::future::Future for YieldOnce {
    type Output = ();

    fn poll(mut self: core::pin::Pin<&mut Self>, cx: &mut core::task::Context<'_>) -> core::task::Poll<()> {
        if self.0 {
            return core::task::Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        core::task::Poll::Pending
    }
}

pub(crate) fn set_fuel_per_call(guest: &'static str, current: &mut Option<u64>, fuel: Option<u64>) -> Result<(), Error> {
    if current.is_none() {
        return Err(Error::FuelOff { guest });
    }
    // Without a bound the store is filled once; it runs dry after 2^64 units.
    *current = Some(fuel.unwrap_or(u64::MAX));
    Ok(())
}

/// What a failed call of `function` comes to: its fault, read from the trap and from a
/// `memory.grow` the store refused during the call.
pub(crate) fn failed<H>(
    guest: &'static str,
    function: &'static str,
    context: &Context<H>,
    cause: wasmtime::Error,
) -> Error {
    let fault = match (Fault::of(&cause), context.memory.refused) {
        // The guest could not cope with the -1 and trapped.
        (Fault::Unreachable, Some((size, requested))) => Fault::MemoryLimit { size, requested },
        (fault, _) => fault,
    };
    Error::Call {
        guest,
        function,
        fault,
        cause,
    }
}

/// For a host import that takes guest pointers: the calling guest's memory and the host.
#[doc(hidden)]
pub fn memory_and_host<'a, H: 'static>(caller: &'a mut Caller<'_, Context<H>>) -> (GuestMemory<'a>, &'a mut H) {
    let guest = caller.data().guest;
    match caller.get_export("memory").and_then(Extern::into_memory) {
        Some(memory) => {
            let (bytes, context) = memory.data_and_store_mut(caller);
            (GuestMemory::new(guest, bytes), &mut context.host)
        }
        None => (GuestMemory::new(guest, &mut []), &mut caller.data_mut().host),
    }
}
