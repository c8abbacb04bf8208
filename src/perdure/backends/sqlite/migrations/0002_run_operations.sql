-- Finding ended runs by age, for retention.
CREATE INDEX perdure_runs_finished ON perdure_runs (finished_at) WHERE finished_at IS NOT NULL;
