import os

# Tests never use more than the job's share of the 2 CI cores, nor the network.
os.environ.setdefault("OMP_NUM_THREADS", "1")
