from setuptools import setup

setup(name="mistake-pkg", version="1.0", packages=["mistake_pkg"],
      package_data={"mistake_pkg": ["blob.bin"]})
