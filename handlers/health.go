package handlers

import (
	"context"

	"github.com/gofiber/fiber/v2"
)

// Pinger reports the state of the node's link to the cluster.
type Pinger interface {
	Ping(ctx context.Context) error
}

// HealthController answers GET /up.
type HealthController struct {
	link Pinger
}

// NewHealthController returns the controller.
func NewHealthController(link Pinger) *HealthController {
	return &HealthController{link: link}
}

// Up handles GET /up: 200 while the node serves, 503 naming the Redis link
// while a scaling node has lost it.
func (h *HealthController) Up(c *fiber.Ctx) error {
	if err := h.link.Ping(c.UserContext()); err != nil {
		return c.Status(fiber.StatusServiceUnavailable).JSON(fiber.Map{"health": "DEGRADED", "error": "redis link is down: " + err.Error()})
	}
	return c.JSON(fiber.Map{"health": "OK"})
}
