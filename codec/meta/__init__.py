"""Meta-learned initialisation θ0 (issue #13): the ``.spnri`` container, the shipped files, Reptile
meta-training and residual coding (a stream sends Δθ = θ − θ0; docs/SPINR.md, "Meta-learned
initialisation")."""
