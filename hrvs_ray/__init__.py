"""hrvs-ray: Ray-distributed sweeps of CNN training on LR&FS, MR&VS and HR&VS inputs."""
__version__ = "0.1.0"

