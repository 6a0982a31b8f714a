"""The registry's DynamoDB adapters: one per kind of record, all in one table.

One table, keyed PK/SK, with a sparse GSI (GSI1PK/GSI1SK) that lists each kind of
record: datasets, jobs, models and keys newest first, aliases by name. Items without
GSI1 keys are never listed. Items with an ``expires_at`` (epoch seconds) are deleted by the
table's TTL once past it.

    DATASET#<dataset_id> / DATASET          one per uploaded object version
    DATASET#<dataset_id> / NOTICE#<kind>    a notice about it was sent (not listed)
    DATASET#<dataset_id> / JOB              the provider job trained from it
    JOBID#<job_id>       / JOB              finds that job by the provider's id (not listed)
    JOBID#<job_id>       / WAIT             the task token of the run waiting for the job's
                                            end, taken by the first event (not listed, TTL)
    EVENT#<delivery_id>  / EVENT            a provider event delivery already handled
                                            (not listed, TTL)
    MODEL#<model_id>     / MODEL            a fine-tuned model and where it came from (and
                                            the last day the API answered with it)
    MODEL#<model_id>     / RETIREMENT#<date>#<days>
                                            a retirement warning sent about it (not listed)
    ALIAS#<name>         / ALIAS            an alias: current and latest version numbers,
                                            and a copy of the current version (one read)
    ALIAS#<name>         / VERSION#<n:06d>  one alias version, written once (not listed)
    KEY#<key_hash>       / KEY              an inference API key, stored by hash
"""
