"""`fulcrum report`: the decision history of one ModelDeployment as a table and a picture."""
