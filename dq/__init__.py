"""dq: the glue of the Jaffle Shop data-quality pipeline.

The command line (``python -m dq``), the Airflow DAG (``dags/``) and the tests
all import this package; none of them holds pipeline logic of its own.
"""

__version__ = "0.1.0"
