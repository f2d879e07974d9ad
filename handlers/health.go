package handlers

import (
	"github.com/fizz-server/fizz/scaling"
	"github.com/gofiber/fiber/v2"
)

// Drainer reports whether the node has begun to shut down.
type Drainer interface {
	Draining() bool
}

// HealthController answers GET /up and GET /ready. Both are cheap: the
// link state is read from memory, never a round trip to Redis.
type HealthController struct {
	link  scaling.Link
	drain Drainer
}

// NewHealthController returns the controller.
func NewHealthController(link scaling.Link, drain Drainer) *HealthController {
	return &HealthController{link: link, drain: drain}
}

// Up handles GET /up: 200 while the node serves, 503 naming the Redis link
// while a scaling node has lost it.
func (h *HealthController) Up(c *fiber.Ctx) error {
	if err := h.link.Ping(c.UserContext()); err != nil {
		return c.Status(fiber.StatusServiceUnavailable).JSON(fiber.Map{"health": "DEGRADED", "redis": "down", "error": err.Error()})
	}
	return c.JSON(fiber.Map{"health": "OK"})
}

// Ready handles GET /ready: 200 while the node takes new sockets; 503
// while it drains or while a scaling node has no Redis link, so a load
// balancer sends new sockets elsewhere.
func (h *HealthController) Ready(c *fiber.Ctx) error {
	if h.drain.Draining() {
		return c.Status(fiber.StatusServiceUnavailable).JSON(fiber.Map{"ready": false, "error": "the node is shutting down"})
	}
	if err := h.link.Ping(c.UserContext()); err != nil {
		return c.Status(fiber.StatusServiceUnavailable).JSON(fiber.Map{"ready": false, "redis": "down", "error": err.Error()})
	}
	return c.JSON(fiber.Map{"ready": true})
}
