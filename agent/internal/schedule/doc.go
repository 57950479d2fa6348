// Package schedule runs the agent's periodic jobs (automatic etcd
// snapshots, file and base backups, their retention) from cron
// expressions. Every agent ticks; a job decides at each tick whether this
// agent should act (the etcd leader's does), so three servers make one
// snapshot, not three. Stopping a scheduler (a configuration reload) waits
// for the runs in progress without cancelling them, and the next
// scheduler runs at once a tick that fell due in between; after a restart
// missed ticks are not made up.
package schedule
