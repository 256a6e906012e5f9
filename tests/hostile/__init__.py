"""The hostile-file corpus: files crafted to run code, hang, exhaust memory, escape or mislead.

Each family module (`torch_cases`, `hdf5_cases`, ...) lists `CASES`; `test_corpus` runs
every command on each case in a child process with a time and memory limit.
"""
