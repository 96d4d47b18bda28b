//! Where objects lie in the storage: the top directories of the objects and of their records,
//! and how a name becomes a directory name. Shared by the store ([`crate::objects`]) and the
//! move of the earlier layout ([`crate::legacy`]).

use object_store::path::PathPart;

/// Top directories of the objects and of their records.
pub(crate) const DATA: &str = "objects";
pub(crate) const RECORDS: &str = "records";

/// A segment as stored on disk (the encoding of [`PathPart`]).
pub(crate) fn encoded(segment: &str) -> String {
    PathPart::from(segment).as_ref().to_string()
}
