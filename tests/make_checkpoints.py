#!/usr/bin/env python3
"""Writes PyTorch-format checkpoints without PyTorch, for the checkpoint reader's tests.

torch.save's two container formats are reproduced with the standard library: fake `torch`
and `torch._utils` modules give the pickler the same globals torch writes
(torch._utils._rebuild_tensor_v2, torch.FloatStorage, ...), and persistent ids carry the
storages exactly as torch's serializer lays them out:
  zip (torch >= 1.6): ARCHIVE/data.pkl, ARCHIVE/data/KEY, ARCHIVE/version, ARCHIVE/byteorder
  legacy: magic number, protocol version, system info, the object, storage keys, storages.
Every tensor's expected values are written as float32 .npy next to the checkpoints.

Usage: make_checkpoints.py OUTDIR
"""
import collections, io, os, pickle, struct, sys, types, zipfile

import numpy as np

torch = types.ModuleType("torch")
utils = types.ModuleType("torch._utils")
torch._utils = utils
sys.modules["torch"], sys.modules["torch._utils"] = torch, utils


def _rebuild_tensor_v2(*args):
    raise RuntimeError("never called when writing")


def _rebuild_parameter(*args):
    raise RuntimeError("never called when writing")


_rebuild_tensor_v2.__module__ = _rebuild_parameter.__module__ = "torch._utils"
utils._rebuild_tensor_v2, utils._rebuild_parameter = _rebuild_tensor_v2, _rebuild_parameter

STORAGE_TYPES = {np.float32: "FloatStorage", np.float64: "DoubleStorage", np.float16: "HalfStorage",
                 np.int64: "LongStorage", np.int32: "IntStorage", np.uint8: "ByteStorage"}
for name in STORAGE_TYPES.values():
    cls = type(name, (), {"__module__": "torch"})
    setattr(torch, name, cls)


class Storage:
    """A storage; `numel` overrides the element count the pickle declares (hostile files),
    `view` makes a legacy-format storage view (root key, element offset, element count)."""
    def __init__(self, key, array, numel=None, view=None):
        self.key, self.array = key, np.ascontiguousarray(array).reshape(-1)
        self.type = getattr(torch, STORAGE_TYPES[self.array.dtype.type])
        self.numel = self.array.size if numel is None else numel
        self.view = view


class FakeTensor:
    """Pickles as torch does: _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks)."""
    def __init__(self, storage, offset, size, stride, parameter=False):
        self.storage, self.offset, self.size, self.stride, self.parameter = storage, offset, size, stride, parameter

    def __reduce__(self):
        args = (self.storage, self.offset, tuple(self.size), tuple(self.stride), False, collections.OrderedDict())
        if self.parameter:
            inner = FakeTensor(self.storage, self.offset, self.size, self.stride)
            return (_rebuild_parameter, (inner, True, collections.OrderedDict()))
        return (_rebuild_tensor_v2, args)


def view(storage, offset, size, stride):
    flat = storage.array
    item = flat.itemsize
    return np.array(np.lib.stride_tricks.as_strided(flat[offset:], shape=size, strides=[s * item for s in stride]), dtype=np.float32, order="C")


def state():
    """Tensors exercising strides, shared storages with offsets, dtypes and parameters."""
    r = np.random.default_rng(7)
    base = r.standard_normal(24).astype(np.float32)
    shared = Storage("0", base)
    conv = r.standard_normal((4, 3, 2, 2)).astype(np.float32)
    # Stored channels-last, as weights converted from TensorFlow are: strides (1, 4, 24, 12).
    conv_hwio = Storage("1", np.ascontiguousarray(conv.transpose(2, 3, 1, 0)))
    half = Storage("2", r.standard_normal(6).astype(np.float16))
    double = Storage("3", r.standard_normal(5))
    counter = Storage("4", np.array([12345], dtype=np.int64))
    tensors = collections.OrderedDict()
    tensors["layer.weight"] = FakeTensor(shared, 0, (2, 3), (3, 1), parameter=True)
    tensors["layer.bias"] = FakeTensor(shared, 6, (3,), (1,))
    tensors["layer.transposed"] = FakeTensor(shared, 9, (3, 4), (1, 3))
    tensors["conv.weight"] = FakeTensor(conv_hwio, 0, (4, 3, 2, 2), (1, 4, 24, 12))
    tensors["half"] = FakeTensor(half, 1, (5,), (1,))
    tensors["double"] = FakeTensor(double, 0, (5,), (1,))
    tensors["bn.num_batches_tracked"] = FakeTensor(counter, 0, (), ())
    return tensors, [shared, conv_hwio, half, double, counter]


class Pickler(pickle.Pickler):
    def __init__(self, f, legacy):
        super().__init__(f, protocol=2)
        self.legacy = legacy

    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            numel = obj.numel
            if self.legacy:
                if obj.view is not None:
                    root, offset, size = obj.view
                    return ("storage", obj.type, root, "cpu", numel, (obj.key, offset, size))
                return ("storage", obj.type, obj.key, "cpu", numel, None)
            return ("storage", obj.type, obj.key, "cpu", numel)
        return None


def write_zip(path, obj, storages, prefix="archive"):
    buf = io.BytesIO()
    Pickler(buf, legacy=False).dump(obj)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as z:
        z.writestr(prefix + "/data.pkl", buf.getvalue())
        z.writestr(prefix + "/byteorder", "little")
        for s in storages:
            z.writestr(prefix + "/data/" + s.key, s.array.astype(s.array.dtype.newbyteorder("<")).tobytes())
        z.writestr(prefix + "/version", "3\n")


def write_legacy(path, obj, storages):
    with open(path, "wb") as f:
        pickle.dump(0x1950A86A20F9469CFC6C, f, protocol=2)
        pickle.dump(1001, f, protocol=2)
        pickle.dump({"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}}, f, protocol=2)
        Pickler(f, legacy=True).dump(obj)
        keys = sorted(s.key for s in storages)
        pickle.dump(keys, f, protocol=2)
        by_key = {s.key: s for s in storages}
        for k in keys:
            a = by_key[k].array
            f.write(struct.pack("<q", a.size))
            f.write(a.astype(a.dtype.newbyteorder("<")).tobytes())


class Evil:
    """A pickle that would run os.system on a real unpickler."""
    def __reduce__(self):
        import os
        return (os.system, ("echo pwned",))


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    tensors, storages = state()
    for name, t in tensors.items():
        np.save(os.path.join(out, "expected_%s.npy" % name), view(t.storage, t.offset, t.size, t.stride))
    write_zip(os.path.join(out, "state_zip.pt"), tensors, storages)
    write_legacy(os.path.join(out, "state_legacy.pt"), tensors, storages)
    # A training checkpoint: the state dict nested under "state_dict" beside other entries.
    wrapped = {"epoch": 3, "best_acc": 0.75, "arch": "toy", "state_dict": tensors}
    write_zip(os.path.join(out, "wrapped_zip.pt"), wrapped, storages, prefix="wrapped")
    # Refused: a pickle that names os.system, inside both containers.
    write_zip(os.path.join(out, "evil_zip.pt"), {"w": Evil()}, [])
    write_legacy(os.path.join(out, "evil_legacy.pt"), {"w": Evil()}, [])
    with open(os.path.join(out, "evil_plain.pkl"), "wb") as f:
        pickle.dump(Evil(), f, protocol=2)
    # Refused: a non-tensor object (a class instance) instead of a tensor.
    write_zip(os.path.join(out, "counter_zip.pt"), {"w": collections.Counter(a=1)}, [])
    hostile(out)
    print("wrote checkpoints to", out)


def hostile(out):
    """Checkpoints whose geometry would make a careless reader allocate gigabytes or trap on
    integer overflow; each must be refused with a message naming the tensor."""
    four = Storage("0", np.arange(4, dtype=np.float32))
    # A broadcast view: 2^30 elements (4 GiB of floats) out of a 4-element storage.
    write_zip(os.path.join(out, "zero_stride_huge_zip.pt"), {"w": FakeTensor(four, 0, (1 << 28, 4), (0, 1))}, [four])
    # A zero stride that does not grow the element count beyond the storage.
    write_zip(os.path.join(out, "zero_stride_zip.pt"), {"w": FakeTensor(four, 0, (2, 2), (0, 1))}, [four])
    # (3 - 1) * 2^62 overflows 64 bits.
    write_zip(os.path.join(out, "stride_overflow_zip.pt"), {"w": FakeTensor(four, 0, (3, 1), (1 << 62, 1 << 62))}, [four])
    # A storage declaring 2^62 elements: element count times element size overflows.
    huge = Storage("0", np.arange(4, dtype=np.float32), numel=1 << 62)
    write_zip(os.path.join(out, "storage_count_overflow_zip.pt"), {"w": FakeTensor(huge, 0, (4,), (1,))}, [huge])
    # One 1000-element storage under 10 names: 10x the elements the file holds.
    big = Storage("0", np.zeros(1000, dtype=np.float32))
    write_zip(os.path.join(out, "many_views_zip.pt"),
              collections.OrderedDict(("w%d" % i, FakeTensor(big, 0, (1000,), (1,))) for i in range(10)), [big])
    # Legacy storage view starting at element 2^62 of a 4-element root storage.
    root = Storage("0", np.arange(4, dtype=np.float32))
    far = Storage("1", np.arange(4, dtype=np.float32), view=("0", 1 << 62, 2))
    write_legacy(os.path.join(out, "view_offset_legacy.pt"), {"w": FakeTensor(far, 0, (2,), (1,))}, [root])


if __name__ == "__main__":
    main()
