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
        // Not through `prepare`: as a call that returns the store and linker, it made the
        // add example's component 208 B larger.
        if !core::ptr::eq(component.guest(), guest) {
            return Err(Error::OtherGuest {
                guest: guest.name(),
                module: component.guest().name(),
            });
        }
        let _setting_up = crate::guest::SettingUp::new(guest);
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

/// The guest's store and a linker with its world's imports, once `component` is known
/// to be the guest's.
#[cfg(feature = "async")]
fn prepare<H: 'static>(
    guest: &'static Guest,
    component: &GuestComponent,
    host: H,
    link: impl FnOnce(&mut Linker<Context<H>>) -> wasmtime::Result<()>,
) -> Result<(Store<Context<H>>, Linker<Context<H>>), Error> {
    if !core::ptr::eq(component.guest(), guest) {
        return Err(Error::OtherGuest {
            guest: guest.name(),
            module: component.guest().name(),
        });
    }
    let engine = component.component().engine();
    let mut linker = Linker::new(engine);
    link(&mut linker).map_err(|cause| instantiation(guest, cause))?;
    Ok((Context::store(engine, guest.name(), host), linker))
}

#[cfg(feature = "async")]
fn instantiation(guest: &'static Guest, cause: wasmtime::Error) -> Error {
    Error::Instantiate {
        guest: guest.name(),
        cause,
    }
}

/// The future that instantiates a component's async bindings, or runs one of their
/// exports (the generated code boxes `instantiate_async` and `call_*`).
#[cfg(feature = "async")]
pub type BindingsFuture<'a, T> = core::pin::Pin<alloc::boxed::Box<dyn core::future::Future<Output = wasmtime::Result<T>> + Send + 'a>>;

#[cfg(feature = "async")]
impl<H: Send + 'static, W: Send> ComponentInstance<H, W> {
    /// As [`ComponentInstance::new`], for bindings whose imports and exports are async:
    /// calls yield every `Settings::fuel_yield_interval` units of fuel.
    pub async fn new_async(
        guest: &'static Guest,
        component: &GuestComponent,
        host: H,
        link: impl FnOnce(&mut Linker<Context<H>>) -> wasmtime::Result<()>,
        instantiate: impl for<'s> FnOnce(
            &'s mut Store<Context<H>>,
            &'s Component,
            &'s Linker<Context<H>>,
        ) -> BindingsFuture<'s, W>,
    ) -> Result<ComponentInstance<H, W>, Error> {
        let _setting_up = crate::guest::SettingUp::new(guest);
        let (mut store, linker) = prepare(guest, component, host, link)?;
        let fuel_per_call = guest.settings().fuel;
        if let Some(interval) = guest.settings().fuel_yield_interval {
            store.fuel_async_yield_interval(Some(interval)).map_err(Error::Engine)?;
        }
        Context::begin_call(&mut store, fuel_per_call)?;
        let instantiating = instantiate(&mut store, component.component(), &linker);
        let bindings = crate::fiber::FiberCall::new(instantiating)
            .await
            .map_err(|cause| instantiation(guest, cause))?;
        Ok(ComponentInstance {
            store,
            bindings,
            component: component.clone(),
            fuel_per_call,
        })
    }

    /// As [`ComponentInstance::call`], with `call` giving the bindings' async `call_*`
    /// future, boxed.
    pub async fn call_async<'a, R>(
        &'a mut self,
        function: &'static str,
        call: impl FnOnce(&'a W, &'a mut Store<Context<H>>) -> BindingsFuture<'a, R>,
    ) -> Result<R, Error> {
        if self.component.guest().settings().fuel_yield_interval.is_some() {
            crate::instance::YieldOnce(false).await;
        }
        Context::begin_call(&mut self.store, self.fuel_per_call)?;
        let guest = self.component.guest().name();
        let this = &mut *self;
        let result = crate::fiber::FiberCall::new(call(&this.bindings, &mut this.store)).await;
        // The store stays borrowed for the bindings' lifetime, so a refused memory.grow
        // cannot be told from another `unreachable` here: both are Fault::Unreachable.
        result.map_err(|cause| Error::Call {
            guest,
            function,
            fault: crate::Fault::of(&cause),
            cause,
        })
    }
}
