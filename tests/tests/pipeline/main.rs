//! End-to-end tests of the pipeline on real Postgres, RabbitMQ and S3 (SeaweedFS): run
//! `scripts/test-services.sh`, which starts them.

mod smoke;
