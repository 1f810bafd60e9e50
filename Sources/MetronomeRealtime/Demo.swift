extension TaskSet {
    /// The built-in default task set, identical to `examples/demo.yaml` (a test checks it).
    public static let demoYAML = """
# The built-in default task set (`metronome run` with no file): four networks on two cores,
# fixed priorities with preemption at layer boundaries. Core 0 runs a fast camera network
# above a slower planner; core 1 a detector above a large mapper.
# Expected (checked by `make examples`): the analysis calls every task schedulable and the
# run misses nothing.
# expect: schedulable
# expect: no misses
# expect: analysis held
name: demo
duration: 10s
policy: fixed-priority
preemption: layer
release: synchronous
cores: [0, 1]
tasks:
  - name: camera
    model: mobilenet_v2
    period: 33ms
    priority: 30
    cores: [0]
  - name: planner
    model: resnet18
    period: 100ms
    priority: 10
    cores: [0]
  - name: detector
    model: efficientnet-lite0
    period: 50ms
    priority: 20
    cores: [1]
  - name: mapper
    model: resnet50
    period: 200ms
    priority: 5
    cores: [1]

"""
}
