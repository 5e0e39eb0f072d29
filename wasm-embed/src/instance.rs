//! A guest instantiated in a store of its own, which the typed bindings that
//! `wasm-embed-build` generates wrap: dropping it returns all of the guest's memory.

use wasmtime::{Caller, Extern, Instance, Module, ResourceLimiter, Store, WasmParams, WasmResults};

use crate::{Error, Guest, GuestFunc};

/// What a guest's store holds: the host that serves its imports, and what it needs to
/// explain a refused `memory.grow`.
pub struct Context<H> {
    guest: &'static str,
    host: H,
    memory: FixedMemory,
}

impl<H> Context<H> {
    /// The host that serves the guest's imports.
    pub fn host(&mut self) -> &mut H {
        &mut self.host
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

/// A guest instantiated with a host `H`, in a store of its own.
pub struct GuestInstance<H: 'static> {
    guest: Guest,
    store: Store<Context<H>>,
    instance: Instance,
    fuel_per_call: Option<u64>,
}

impl<H: 'static> GuestInstance<H> {
    /// Instantiates `guest` from its loaded `module`. `imports` makes the guest's imports
    /// in the store, in the order the guest declares them.
    pub fn new<I: AsRef<[Extern]>>(
        guest: &Guest,
        module: &Module,
        host: H,
        imports: impl FnOnce(&mut Store<Context<H>>) -> I,
    ) -> Result<GuestInstance<H>, Error> {
        let context = Context {
            guest: guest.name(),
            host,
            memory: FixedMemory::default(),
        };
        let mut store = Store::new(module.engine(), context);
        store.limiter(|context| &mut context.memory);
        // Instantiation runs the guest's start function, if it has one: bound it too.
        if let Some(fuel) = guest.settings().fuel {
            store.set_fuel(fuel).map_err(Error::Engine)?;
        }
        let imports = imports(&mut store);
        let instance = guest.instantiate(&mut store, module, imports.as_ref())?;
        Ok(GuestInstance {
            guest: *guest,
            store,
            instance,
            fuel_per_call: guest.settings().fuel,
        })
    }

    /// Looks up an exported function with the given Rust signature.
    pub fn func<Params: WasmParams, Results: WasmResults>(
        &mut self,
        name: &'static str,
    ) -> Result<GuestFunc<Params, Results>, Error> {
        self.guest.func(&mut self.store, &self.instance, name)
    }

    /// Calls an export of this instance, refuelled first when fuel is on, so each call
    /// is bounded on its own.
    pub fn call<Params: WasmParams, Results: WasmResults>(
        &mut self,
        func: &GuestFunc<Params, Results>,
        params: Params,
    ) -> Result<Results, Error> {
        if let Some(fuel) = self.fuel_per_call {
            self.store.set_fuel(fuel).map_err(Error::Engine)?;
        }
        self.store.data_mut().memory.refused = None;
        func.call(&mut self.store, params).map_err(|error| match error {
            Error::Call { guest, function, fault, cause } => Error::Call {
                guest,
                function,
                fault: match (fault, self.store.data().memory.refused) {
                    // The guest could not cope with the -1 and trapped.
                    (crate::Fault::Unreachable, Some((size, requested))) => crate::Fault::MemoryLimit { size, requested },
                    (fault, _) => fault,
                },
                cause,
            },
            other => other,
        })
    }

    /// Changes the fuel each later call may burn (`None`: unbounded). Only a build with
    /// fuel on (`Builder::fuel` in build.rs) compiles the checks; without them this
    /// returns [`Error::FuelOff`].
    pub fn set_fuel_per_call(&mut self, fuel: Option<u64>) -> Result<(), Error> {
        if self.guest.settings().fuel.is_none() {
            return Err(Error::FuelOff { guest: self.guest.name() });
        }
        // Without a bound the store is filled once; it runs dry after 2^64 units.
        self.fuel_per_call = Some(fuel.unwrap_or(u64::MAX));
        Ok(())
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
    pub fn memory(&mut self) -> crate::GuestMemory<'_> {
        let guest = self.guest.name();
        let bytes = match self.instance.get_memory(&mut self.store, "memory") {
            Some(memory) => memory.data_mut(&mut self.store),
            None => &mut [],
        };
        crate::GuestMemory::new(guest, bytes)
    }

    /// The store, for what the bindings do not cover.
    pub fn store_mut(&mut self) -> &mut Store<Context<H>> {
        &mut self.store
    }

    /// The Wasmtime instance, for what the bindings do not cover.
    pub fn instance(&self) -> &Instance {
        &self.instance
    }
}

/// For a host import that takes guest pointers: the calling guest's memory and the host.
pub fn memory_and_host<'a, H: 'static>(caller: &'a mut Caller<'_, Context<H>>) -> (crate::GuestMemory<'a>, &'a mut H) {
    let guest = caller.data().guest;
    match caller.get_export("memory").and_then(Extern::into_memory) {
        Some(memory) => {
            let (bytes, context) = memory.data_and_store_mut(caller);
            (crate::GuestMemory::new(guest, bytes), &mut context.host)
        }
        None => (crate::GuestMemory::new(guest, &mut []), &mut caller.data_mut().host),
    }
}
