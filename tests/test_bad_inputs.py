"""Bad inputs fail loudly: every case of issue 19 ("Correct by default") raises an error that names the
file or the key at fault, or gives the standard answer, instead of finishing with a wrong result.

One test per case, grouped by theme in titled sections.
"""

# ---------------------------------------------------------------------------------------------------------
# Standard RayIoU, checked checkpoints, safe loading, errors that name the file
# ---------------------------------------------------------------------------------------------------------
