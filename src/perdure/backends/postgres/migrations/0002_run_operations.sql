-- Operators' statuses, and finding ended runs by age for retention.
ALTER TABLE perdure_runs DROP CONSTRAINT perdure_runs_status_check;
ALTER TABLE perdure_runs ADD CONSTRAINT perdure_runs_status_check CHECK (status IN (
    'pending', 'running', 'completed', 'failed', 'cancelled', 'held',
    'paused', 'terminated', 'dead_letter'
));
CREATE INDEX perdure_runs_finished ON perdure_runs (finished_at) WHERE finished_at IS NOT NULL;
