"""What the installers leave out, in one place: the PyInstaller spec excludes these, and collect_licenses.py does not
list them among the bundled components."""

# pyhanko-certvalidator imports its aiohttp fetchers only on request; CSOS Desk fetches CRLs with requests.
EXCLUDED_DISTRIBUTIONS = frozenset({"aiohttp", "aiosignal", "aiohappyeyeballs", "frozenlist", "multidict", "yarl",
                                    "propcache"})
# Import names of the above (each distribution here installs a package of the same name).
EXCLUDED_MODULES = sorted(EXCLUDED_DISTRIBUTIONS)
