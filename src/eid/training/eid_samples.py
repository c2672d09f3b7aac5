"""The columns of stage 2's per-epoch sample grid (:class:`eid.training.callbacks.SampleGrid`): what the dehazer
makes of a fixed hazy batch, and what the operator the losses use makes of that."""

from __future__ import annotations

from typing import Any

from torch import Tensor


class SampleColumns:
    """Mixin of :class:`~eid.training.eid_module.EIDModule` (whose dehazer, operators and network input it reads):
    the grid's columns."""

    def sample_columns(self, batch: dict[str, Any]) -> list[Tensor]:
        """Hazy ``y``, [the network input], ``f(y)``, ``H(f(y))``, [a transmission,] [clear].

        The network input is ``H^dagger(y)`` or ``DCP(y)`` (computed once for ``f`` and for the grid). ``H`` is
        the operator of the haze-consistency term: with ``haze: observed`` each image's own ``H_y`` and its
        ``t_hat(y)``; for a scattering operator its maps of ``f(y)`` (at the fitted density with
        ``density: per_image``) and ``t(f(y))``.
        """
        y = batch["hazy"].to(self.device)
        physics = self.physics_for(
            {k: v.to(self.device) for k, v in batch.items() if isinstance(v, Tensor)}
        )
        z = self.network_input(y, physics)
        x_net = self.dehazer.from_network_input(z)
        columns = [y] if z is y else [y, z]
        if self.observed_haze is not None:  # fitted to y by network_input
            observed = self.observed_haze
            columns += [x_net, observed.A(x_net), observed.transmission.expand_as(x_net)]
        elif hasattr(physics, "maps"):  # the maps once, for H(f(y)) and the grid
            maps = physics.maps(x_net)
            if self.config.density == "per_image":
                density = self.per_image_density.fit(z, y).density
                maps["transmission"] = maps["transmission"] ** density
            columns += [x_net, physics.A(x_net, **maps), maps["transmission"].expand_as(x_net)]
        else:
            columns += [x_net, physics.A(x_net)]
        if "clear" in batch:
            columns.append(batch["clear"].to(self.device))
        return columns
