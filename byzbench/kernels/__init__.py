"""byzbench's numeric kernels, one module per concern (public API re-exported here):

* :mod:`~byzbench.kernels.threads` - the column-block pool and the one-thread BLAS limit;
* :mod:`~byzbench.kernels.rows` - row-count errors, combinations, buffers, column samples;
* :mod:`~byzbench.kernels.distances` - THE distance primitive (centred Gram), batched;
* :mod:`~byzbench.kernels.similarity` - cosine distances, norms, centred Gram of rows;
* :mod:`~byzbench.kernels.selection` - Krum scores, stable smallest-k;
* :mod:`~byzbench.kernels.networks` - comparator (sorting and selection) networks;
* :mod:`~byzbench.kernels.coordinatewise` - per-column order statistics;
* :mod:`~byzbench.kernels.norms` - row norms, norm bounds, clipping scales, seeded noise.

Nothing here keeps a cache that a kernel reads implicitly: a shared result (the
pairwise distances of a batch) is passed explicitly.
"""

from __future__ import annotations

from byzbench.kernels import norms  # noqa: F401,E402 (kernels.norms.*)
from byzbench.kernels.coordinatewise import (  # noqa: F401
    Array,
    columnwise,
    columnwise_batch,
    mean_around,
    median_block,
    median_sorted,
    numpy_ok,
    order_mean,
    sort0,
    take_rows,
)
from byzbench.kernels.distances import (  # noqa: F401
    Pairwise,
    batch_by_pairwise,
    centered_gram,
    median,
    pairwise,
    pairwise_batch,
    sqdist_from_gram,
    sqdist_to,
    sqdist_to_combo,
)
from byzbench.kernels.networks import (  # noqa: F401
    NETWORK_MAX_ROWS,
    SORT_NETWORK_MAX_ROWS,
    comparators,
    network_rows,
)
from byzbench.kernels.rows import (  # noqa: F401
    all_finite,
    check_rows,
    combine,
    gather_cols,
    one_hot,
    random_projections,
    reusable,
    sample_columns,
    stack_weights,
    to_np,
)
from byzbench.kernels.selection import (  # noqa: F401
    krum_scores,
    stable_smallest,
)
from byzbench.kernels.similarity import (  # noqa: F401
    cosine_distances,
    row_sq_norms,
)
from byzbench.kernels.threads import (  # noqa: F401
    CHUNK_ELEMS,
    pool,
    single_blas,
)
