// Package server owns the node's listener: it builds the *fiber.App that
// handlers mount their routes on, binds the port at start and, at stop,
// stops accepting and drains every socket through connection.Registry. It
// mirrors Reverb's ServerProvider / Factory.
//
// It imports only connection. The *fiber.App is safe for concurrent use
// once started; Server's own fields are set in Start and read after it.
package server
