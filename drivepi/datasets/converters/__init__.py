"""Info-file creation from nuScenes-format datasets."""
