// Package schedule runs the agent's periodic jobs (automatic etcd snapshots
// and their retention) from cron expressions. Every agent ticks; a job
// decides at each tick whether this agent should act (the etcd leader's
// does), so three servers make one snapshot, not three. Missed ticks are
// not made up: after a restart the next tick is the next one due.
package schedule
