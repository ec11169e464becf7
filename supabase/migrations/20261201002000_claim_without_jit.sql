-- The claim without JIT. Once the queue holds tens of thousands of jobs, the planner's
-- estimates for the claim's query pass jit_above_cost and PostgreSQL compiles it on every
-- call: measured with 92,000 queued webhook deliveries, a claim took 45-150 ms (450-1,500 ms
-- on a loaded machine) with JIT and 1.4 ms without. The claim runs a few hundred times a
-- second under load and touches a handful of rows: compiling never pays.
alter function private.claim_jobs(text[], int, int, int[]) set jit = off;
