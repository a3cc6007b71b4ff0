//! pgate-compile library.
