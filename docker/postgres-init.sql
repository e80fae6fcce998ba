-- The warehouse database of DQ_TARGET=postgres, beside Airflow's own (POSTGRES_DB):
-- the same two databases `make postgres` creates (dq/pgcluster.py).
create database jaffle_shop;
