"""The dataset stage: the files of a LeRobot v3.0 dataset — where they live, how they are written, and
the one reader of their metadata. Internal to streamrec: the stages use it, users use `streamrec`."""
