//! SVR metadata codec.
