//! End-to-end tests of the pipeline on real Postgres, RabbitMQ and S3 (SeaweedFS): run
//! `scripts/test.sh` (or `scripts/test-services.sh`), which starts them. Each test gets a fresh
//! database, queue and bucket (`easel_tests::TestApp`); workers are real `easel-worker`
//! processes.

mod access;
mod bad_input;
mod browser;
mod crash;
mod dashboard;
mod duplicates;
mod end_to_end;
mod failures;
mod hostile_text;
mod idempotency;
mod jury;
mod jury_access;
mod lifecycle;
mod limits;
mod openapi_fuzz;
mod recovery;
mod smoke;
mod uploads;
mod versions;
mod zero_shot;
