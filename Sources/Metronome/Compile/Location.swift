import CDNNL

/// A value's physical placement: a buffer and the oneDNN layout of its bytes.
struct Location {
    var ref: BufferRef
    var desc: dnnl_memory_desc_t
}
