// Package handlers is Fizz's edge: the WebSocket endpoint and the
// incoming-message handler that speak Pusher protocol 7 to clients, and the
// Fiber controllers of the Pusher HTTP API and the health routes, and the
// debug console's routes (Console, plain net/http on the metrics
// listener; its event creator goes through EventsController). It turns
// frames and requests into calls on the modules and turns protocol errors
// into pusher:error frames and HTTP statuses.
//
// handlers imports modules/*, scaling (interfaces only), Fiber and
// contrib/websocket; only app imports handlers. Values taken from a
// fiber.Ctx are copied before they outlive the request.
package handlers
