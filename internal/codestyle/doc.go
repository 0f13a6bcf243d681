// Package codestyle holds the tests that keep the repository's Go files in one style, so that
// a reviewer never has to ask for it: gofmt's layout, and imports in three groups (the
// standard library, other modules, this module's own packages), in that order.
package codestyle
