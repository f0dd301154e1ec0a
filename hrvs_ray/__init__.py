"""hrvs-ray: Ray-distributed sweeps of CNN training on LR&FS, MR&VS and HR&VS inputs."""
__version__ = "0.1.0"
SCHEMA_VERSION = 3   # 2: remedies axes, memory growth, counter time fraction; 3: driver version/revision (1, 2 still read)
