// Command pause is the lab's pod sandbox image: it sleeps until told to
// stop, as registry.k8s.io/pause does.
package main
