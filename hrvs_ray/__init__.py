"""hrvs-ray: Ray-distributed sweeps of CNN training on LR&FS, MR&VS and HR&VS inputs."""
__version__ = "0.1.0"
SCHEMA_VERSION = 3   # 3: kernel caches, shape rounding, distinct shapes, allocator (issues 16, 17, 19); 1 and 2 still read
