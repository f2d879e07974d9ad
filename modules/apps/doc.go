// Package apps owns Reverb's "applications": the credentials and limits of
// each app a Fizz node serves, and the Provider that finds one by id or key.
//
// Apps are configured at start and never change afterwards, so a Provider is
// immutable and safe for concurrent use without locks.
package apps
