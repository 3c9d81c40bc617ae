import numpy as np

from styleavatar.tracking.expression import learn_basis, solve_coefficients


def test_basis_is_orthonormal_and_spans_the_data(rng):
    true = np.linalg.qr(rng.normal(size=(60, 4)))[0].T.reshape(4, 20, 3)
    coeffs = rng.normal(size=(200, 4)) * [3, 2, 1, 0.5]
    residuals = np.einsum("nk,kpc->npc", coeffs, true)
    basis, rms = learn_basis(residuals, 6)
    flat = basis.reshape(len(basis), -1)
    np.testing.assert_allclose(flat[:4] @ flat[:4].T, np.eye(4), atol=1e-9)
    assert rms[3] > 0.3 and rms[4] < 1e-9  # four real components, the rest is empty
    recon = np.einsum("nk,kpc->npc", solve_coefficients(residuals, basis[:4], reg=0.0), basis[:4])
    np.testing.assert_allclose(recon, residuals, atol=1e-9)


def test_weighted_solve_matches_normal_equations(rng):
    basis = rng.normal(size=(5, 30, 3))
    r = rng.normal(size=(7, 30, 3))
    w = rng.uniform(0.1, 2, 30)
    got = solve_coefficients(r, basis, w, reg=0.0)
    b = basis.reshape(5, -1).T
    wd = np.repeat(w, 3)
    for i in range(7):
        want = np.linalg.solve(b.T @ (wd[:, None] * b), b.T @ (wd * r[i].ravel()))
        np.testing.assert_allclose(got[i], want, rtol=1e-8, atol=1e-10)


def test_regularisation_shrinks_coefficients(rng):
    basis = rng.normal(size=(5, 30, 3))
    r = rng.normal(size=(3, 30, 3))
    free = np.linalg.norm(solve_coefficients(r, basis, reg=0.0), axis=1)
    ridge = np.linalg.norm(solve_coefficients(r, basis, reg=1.0), axis=1)
    assert (ridge < free).all()
