//! `fermyon:spin/variables@2.0.0`: a component reads its own resolved variables.

use super::HostState;
use super::fermyon::spin::variables::{Error, Host};
use crate::variables::validate_name;

impl Host for HostState {
    /// Returns the component variable `name`, with Spin's error cases: a name breaking the naming
    /// rules is `invalid-name`, a name the component does not define is `undefined`.
    fn get(&mut self, name: String) -> wasmtime::Result<Result<String, Error>> {
        if let Err(reason) = validate_name(&name) {
            return Ok(Err(Error::InvalidName(format!("{name:?}: {reason}"))));
        }
        Ok(match self.component.variables.get(&name) {
            Some(value) => Ok(value.clone()),
            None => Err(Error::Undefined(format!(
                "no variable for {:?}.{name:?}",
                self.component.id
            ))),
        })
    }
}
