"""hrvs-ray: Ray-distributed sweeps of CNN training on LR&FS, MR&VS and HR&VS inputs."""
__version__ = "0.1.0"
SCHEMA_VERSION = 3   # 3: uncounted threads, steal, node ceilings; 2: remedies axes, memory growth,
                     # counter time fraction (1 and 2 still read: new columns are null)
