-- The queue table churns: every job is inserted, updated at each claim and deleted when it
-- ends. Under sustained load its dead rows pile up between autovacuum runs (the default waits
-- for 20% of the table to be dead), and every claim's index scans wade through them.
-- Vacuumed after every few thousand dead rows instead, without cost-based pauses.
alter table private.jobs set (
  autovacuum_vacuum_scale_factor = 0,
  autovacuum_vacuum_threshold = 2000,
  autovacuum_vacuum_cost_delay = 0,
  autovacuum_analyze_scale_factor = 0,
  autovacuum_analyze_threshold = 2000
);
