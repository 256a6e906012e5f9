"""Byte-level parsers shared by the format families; none of them knows `weightkit.model`.

HDF5 opened safely (`hdf5`), zip members (`zip`), the restricted unpickler
(`unpickler`, `numpy_pickle`) and the protobuf wire format (`protobuf`).
"""
