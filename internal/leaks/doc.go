// Package leaks holds the secret sweep: tests that give the command a known secret every
// way it accepts one (database URL userinfo and query parameters, PGPASSWORD, S3 credentials,
// NATS user/password and token) and then search every output for it: backup files, standard
// output and error of each command in every format, trace exports and queue messages.
// It has no code of its own.
package leaks
