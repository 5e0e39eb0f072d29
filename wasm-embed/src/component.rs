//! A component guest instantiated in a store of its own: what a component guest's
//! handle is made of. The host bindings come from the guest's WIT world
//! (`wasmtime::component::bindgen!`); this gives their calls the fuel, the fault kinds
//! and the one-line errors of core guests.

use wasmtime::Store;
use wasmtime::component::{Component, Linker};

use crate::instance::{Context, failed, set_fuel_per_call};
use crate::{Error, Guest, GuestComponent};

/// A component guest instantiated with a host `H`; `W` is the world's bindings.
#[doc(hidden)]
pub struct ComponentInstance<H: 'static, W> {
    // Dropped in this order: the store, which holds the component's code in Wasmtime's
    // registry, before the component, whose last drop lets the guest be loaded again.
    store: Store<Context<H>>,
    bindings: W,
    component: GuestComponent,
    fuel_per_call: Option<u64>,
}

impl<H: 'static, W> ComponentInstance<H, W> {
    /// Instantiates `guest` from `component`, which must have been loaded from it:
    /// `link` adds the world's imports to a linker, `instantiate` makes its bindings.
    pub fn new(
        guest: &'static Guest,
        component: &GuestComponent,
        host: H,
        link: impl FnOnce(&mut Linker<Context<H>>) -> wasmtime::Result<()>,
        instantiate: impl FnOnce(
            &mut Store<Context<H>>,
            &Component,
            &Linker<Context<H>>,
        ) -> wasmtime::Result<W>,
    ) -> Result<ComponentInstance<H, W>, Error> {
        if !core::ptr::eq(component.guest(), guest) {
            return Err(Error::OtherGuest {
                guest: guest.name(),
                module: component.guest().name(),
            });
        }
        let instantiation = |cause| Error::Instantiate {
            guest: guest.name(),
            cause,
        };
        let engine = component.component().engine();
        let mut linker = Linker::new(engine);
        link(&mut linker).map_err(instantiation)?;
        let mut store = Context::store(engine, guest.name(), host);
        let fuel_per_call = guest.settings().fuel;
        Context::begin_call(&mut store, fuel_per_call)?;
        let bindings =
            instantiate(&mut store, component.component(), &linker).map_err(instantiation)?;
        Ok(ComponentInstance {
            store,
            bindings,
            component: component.clone(),
            fuel_per_call,
        })
    }

    /// Calls the export `function` through the world's bindings, refuelled first when
    /// fuel is on. A trap or a failing import comes back as [`Error::Call`]; a component
    /// that trapped refuses further calls (the Component Model forbids re-entering it),
    /// so instantiate it again.
    pub fn call<R>(
        &mut self,
        function: &'static str,
        call: impl FnOnce(&W, &mut Store<Context<H>>) -> wasmtime::Result<R>,
    ) -> Result<R, Error> {
        Context::begin_call(&mut self.store, self.fuel_per_call)?;
        let guest = self.component.guest().name();
        call(&self.bindings, &mut self.store)
            .map_err(|cause| failed(guest, function, self.store.data(), cause))
    }

    /// Changes the fuel each later call may burn (`None`: unbounded); [`Error::FuelOff`]
    /// in a build without fuel checks.
    pub fn set_fuel_per_call(&mut self, fuel: Option<u64>) -> Result<(), Error> {
        set_fuel_per_call(self.component.guest().name(), &mut self.fuel_per_call, fuel)
    }

    /// The host that serves the guest's imports.
    pub fn host(&self) -> &H {
        self.store.data().host_ref()
    }

    /// The host that serves the guest's imports.
    pub fn host_mut(&mut self) -> &mut H {
        self.store.data_mut().host()
    }
}
