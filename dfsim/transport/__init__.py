"""The transport: from encoded packets at the edge to what the cloud receives.

* :mod:`~dfsim.transport.packets`: cutting a tensor into row packets and back;
* :mod:`~dfsim.transport.channels`: loss processes (i.i.d., Gilbert-Elliott, traces);
* :mod:`~dfsim.transport.settings`: the network's parameters (link, traffic, side
  information, error control), declared once, and a scenario's ``network`` section;
* :mod:`~dfsim.transport.jitter`: the registered jitter distributions;
* :mod:`~dfsim.transport.wire`: an image's packets on the wire (order, kinds, sizes);
* :mod:`~dfsim.transport.network`: the SimPy model of links, queues, deadlines and ARQ;
* :mod:`~dfsim.transport.error_control`: the strategy a scenario chooses (none, ARQ, FEC);
* :mod:`~dfsim.transport.fec`: the Reed-Solomon erasure code;
* :mod:`~dfsim.transport.receiver`: the cloud side, turning deliveries into a tensor and a mask.
"""
