-- 0011: a new job's round read from the end of an index (not by counting the provider's unfinished
-- jobs, which a plan made while the table was empty did, about 1 ms per create at 5 000 running);
-- the index that plan used indexes what no query asks any more

    DROP INDEX jobs_unfinished_by_provider;
