"""spark-ml-pipeline's library: the code behind the notebooks, the API's checks and the job.

Importing ``lib`` is deliberately cheap: it starts no Spark session and loads no CatBoost.
Import the submodules you need (``lib.data``, ``lib.training``, ``lib.predict``...).
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
